"""The web dashboard: :func:`allele.dashboard.web.app.create_app` builds the FastAPI app."""
