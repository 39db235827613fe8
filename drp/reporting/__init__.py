"""The published figures: replayed from the event log (figures.py), rendered as JSON, HTML
with SVG charts, CSV and Markdown (render.py)."""
