"""The protocol-neutral core.

- ``model``: who (``Identity``), where (``SessionInfo``), what (an exchange: a SQL ``Statement`` or
  an ``ApiCall``, with its ``ResultColumn``s) and the answer to it (``Decision``). Every protocol
  turns its traffic into these.
- ``documents``: the stand-in the ``document`` hook is given for an API answer that is not JSON.
- ``pipeline``: ``Addon`` (a policy, the audit writer, masking...) and ``Pipeline``, which calls the
  addons' hooks in order and fails closed when one of them breaks.

Nothing here imports a protocol or asyncio.
"""
