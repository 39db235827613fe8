"""The web app: FastAPI with Jinja2 pages rendered on the server, and a JSON API under /api.
A thin shell over the service layer: no business rule lives here."""
