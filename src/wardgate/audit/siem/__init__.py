"""Forwarding the audit trail to a SIEM, losing nothing while the SIEM is away.

- ``fields``: what both output formats read from one of our events (time in milliseconds, the
  client endpoint, the identity and its on-behalf-of chain, a severity, a stable event id).
- ``ocsf``: ``to_ocsf``, one event as an OCSF 1.5.0 object (Authentication 3002, Datastore
  Activity 6005, API Activity 6003, Base Event 0 for types it does not know).
- ``cef``: ``to_cef``, one event as an ArcSight CEF line.
- ``syslog``: RFC 5424 messages over TCP with TLS, octet-counted (RFC 5425/6587).
- ``spool``: ``DiskSpool``, an append-only, segmented, size-bounded on-disk queue with one
  acknowledged cursor per sink.
- ``sinks``: where forwarded events go: a file, an HTTP endpoint, a syslog receiver.
- ``forwarder``: ``Forwarder``, which spools every submitted event and delivers it, in order, to
  each sink from a background thread, retrying with backoff.

A *sink* is one configured destination; its *cursor* is the sequence number of the first spooled
record it has not acknowledged. Delivery is at least once: a record may be sent again after a
crash, and carries a stable id (``metadata.uid`` / ``externalId``) so a receiver can drop repeats.
"""

from wardgate.audit.siem.cef import to_cef
from wardgate.audit.siem.forwarder import Forwarder
from wardgate.audit.siem.ocsf import OCSF_VERSION, to_ocsf
from wardgate.audit.siem.spool import DiskSpool, SpoolFull

__all__ = ["OCSF_VERSION", "DiskSpool", "Forwarder", "SpoolFull", "to_cef", "to_ocsf"]
