"""wardgate: a Layer-7 gateway that makes access to protected health information provable.

Glossary of the top level:

- ``core``: the protocol-neutral model (identity, session, request, result, decision) and the
  pipeline of addons that every protocol feeds.
- ``protocols``: one folder per wire protocol, each a sans-io codec plus thin asyncio glue.
- ``identity``: who is on the other end (authenticators, SCRAM).
- ``audit``: the event model and its sinks.
- ``demo``: the self-contained demonstration (embedded PostgreSQL, synthetic patients).
"""

__version__ = "0.1.0"
