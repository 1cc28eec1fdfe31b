import hashlib
import time

from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render

from .forms import NoteForm, UploadForm
from .models import Note


def home(request):
    """An HTML page whose CSS and JS come through {% static %}: hashed names."""
    return render(request, "demo/home.html", {
        "notes": Note.objects.all()[:10],
        "client": request.META.get("REMOTE_ADDR"),
        "secure": request.is_secure(),
    })


def notes_json(request):
    """A JSON view over sqlite."""
    notes = [{"id": n.id, "text": n.text} for n in Note.objects.order_by("id")[:50]]
    return JsonResponse({"notes": notes, "count": Note.objects.count()})


def note_form(request):
    """A form POST protected by CSRF."""
    if request.method == "POST":
        form = NoteForm(request.POST)
        if form.is_valid():
            note = Note.objects.create(text=form.cleaned_data["text"])
            return redirect(f"/api/notes#note-{note.id}")
    else:
        form = NoteForm()
    return render(request, "demo/form.html", {"form": form})


def upload(request):
    """A file upload: answers with the file's size and SHA-256."""
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            f = form.cleaned_data["file"]
            h = hashlib.sha256()
            for chunk in f.chunks():
                h.update(chunk)
            return JsonResponse({"name": f.name, "size": f.size, "sha256": h.hexdigest()})
        return JsonResponse({"errors": form.errors}, status=400)
    return render(request, "demo/upload.html", {"form": UploadForm()})


def stream(request):
    """A StreamingHttpResponse: ten lines, one every 50 ms."""
    def lines():
        for i in range(10):
            yield f"line {i}\n"
            time.sleep(0.05)

    return StreamingHttpResponse(lines(), content_type="text/plain")


def hello_json(request):
    """A small JSON answer: the benchmark's throughput view."""
    return JsonResponse({"hello": "world", "items": list(range(10))})


def sleep(request):
    """Sleeps 50 ms: the benchmark's view for worker-bound latency."""
    time.sleep(0.05)
    return JsonResponse({"slept_ms": 50})
