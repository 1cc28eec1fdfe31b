from django.urls import path

from demo import views

urlpatterns = [
    path("", views.home, name="home"),
    path("api/notes", views.notes_json, name="notes"),
    path("notes/new", views.note_form, name="note_form"),
    path("upload", views.upload, name="upload"),
    path("stream", views.stream, name="stream"),
    path("json", views.hello_json, name="json"),
    path("sleep", views.sleep, name="sleep"),
]
