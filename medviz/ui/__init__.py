"""The Gradio front end: plain functions (handlers), then layout, then wiring. Only this package and
app.py import gradio; engines never do."""
