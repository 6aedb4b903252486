"""allele.dashboard: the faces that watch Allele live.

* ``allele.dashboard.web``: ``allele dashboard``, a FastAPI app (pages Live, Runs, History,
  Compare, Alerts, Analytics; a JSON API under ``/api/``; server-sent events; ``/metrics``);
* ``allele.dashboard.tui``: ``allele top``, a Textual terminal dashboard.

Both read the store (the bus) and compose services (``allele.bench.views``,
``allele.bench.livestate``, ``allele.bench.diagnose``, ``allele.observe.routing``); neither
holds logic of its own beyond presentation.
"""
