"""The Gradio front end: one module per tab (``tabs/``: controls, request, handlers, events), what the tabs
share (``common``), and the page (``layout``). Only this package and app.py import gradio; engines never do."""
