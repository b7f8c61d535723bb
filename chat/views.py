from django.shortcuts import render


def room_list(request):
    return render(request, "chat/rooms.html", {"rooms": []})
