"""Every route of the HTTP API, declared once, as Powertools routers.

Each Lambda function serves its own router (`generate.serve`, `feedback.serve`) and provides the
cold-start objects its routes depend on (Powertools `Depends`, wired per app); `document` builds
the OpenAPI document from all the routers, so `GET /api/openapi.json` describes every route
whichever function serves it.
"""
