"""The service's self-description: the ``/metadata`` HTML page and the ``/openapi.json`` document.

Both are generated from the route table (``gateway.routes``: operations, their DTOs, errors and
path parameters) and the pydantic DTOs' fields and descriptions, never from hand-kept lists, so
a route, an operation or a field added to the code shows up in both with no second edit.

- ``about``: what the documents say of the service as a whole (name, version, what each status means)
- ``table``: the route table as the documents present it (operations in order, paths as clients write them)
- ``dtos``: the DTOs seen from outside (.NET type names, placeholder examples, JSON and JSV samples)
- ``openapi``: the OpenAPI 3.1 document
- ``html``: the page

The app imports it only inside the handlers of those two routes (``gateway.handlers``), so a cold
start that serves sends never pays for it. Building the documents needs no storage, settings or
Functions runtime, so they can be built anywhere (tests, CLI, CI).
"""
