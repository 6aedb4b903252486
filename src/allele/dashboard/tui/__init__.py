"""The terminal dashboard (``allele top``): :class:`allele.dashboard.tui.app.TopApp`."""
