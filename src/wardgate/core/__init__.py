"""The protocol-neutral core.

- ``model``: who (``Identity``), where (``SessionInfo``), what (``Request``, ``Column``) and the
  answer to it (``Decision``). Every protocol turns its traffic into these.
- ``pipeline``: ``Addon`` (a policy, the audit writer, masking...) and ``Pipeline``, which calls the
  addons' hooks in order and fails closed when one of them breaks.

Nothing here imports a protocol or asyncio.
"""
