"""Static files in production: content-hashed names and .gz copies (WhiteNoise), with one
list of hashed names per release.

Releases (deploy/templates/bin/mblog-release) share STATIC_ROOT: collectstatic never
deletes, so the files of older releases stay for pages still open. The list of hashed
names (the manifest) is read by each process when it starts; one shared list would be
overwritten by the new release's collectstatic, which runs before the switch, and a
process restarted on the old release afterwards (a rollback, or a release that failed to
start) would link files of the new one. So each release has its own list,
staticfiles-<release folder>.json.
"""

from django.conf import settings
from whitenoise.storage import CompressedManifestStaticFilesStorage


class ReleaseManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def __init__(self, *args, **kwargs):
        self.manifest_name = f"staticfiles-{settings.BASE_DIR.name}.json"
        super().__init__(*args, **kwargs)
