"""The web API, one `APIRouter` per area: pages, images (public), image actions (admin), admin sessions."""
