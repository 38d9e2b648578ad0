"""The dashboard's static assets (served by ``workplane.api.ui``)."""
