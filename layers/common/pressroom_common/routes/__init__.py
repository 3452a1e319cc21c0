"""Every route of the HTTP API, declared once, as Powertools routers.

Each route module is a router factory over the collaborators its routes call
(`generate.generate_router(service, checker)`, `feedback.feedback_router(service)`): the
composition root (`pressroom_common.wiring`) builds the routers of each function from its own
cold-start objects. `document.document_router` serves the OpenAPI document of all of them, so
`GET /api/openapi.json` describes every route whichever function serves it.
"""
