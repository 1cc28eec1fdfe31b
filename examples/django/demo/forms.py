from django import forms


class NoteForm(forms.Form):
    text = forms.CharField(max_length=200)


class UploadForm(forms.Form):
    file = forms.FileField()
