"""``drygate review``: a plan and its run as a local web page; approve or reject it there.

mask (secrets never reach the page or a markdown plan), view (what the page shows, built
from a plan and its run's journal, paged), server (the local Starlette app: token, CSRF,
origin checks, approve and reject), markdown (a plan for a pull-request comment).
Nothing here is on the hook's path.
"""
