"""Statement policy: which identity may run which statement on which target.

Glossary:
- rule: who (roles, targets) and which statements (conditions) get which action (`rules.py`).
- condition: a fact of a statement's classification (`sql/classify.py`) a rule asks about: its
  kinds, the tables it touches, PHI, unfiltered, multi-statement, dangerous; or of the identity:
  an agent acting for someone.
- action: allow; deny, with a reason the client is shown; cap_rows, at most N rows reach the
  client and the relay withholds the rest (`Decision.cap`).
- protections: what is refused before any rule is read, unless the configuration turns it off:
  statements that do not parse, what the gateway cannot judge (`sql/danger.py`; but for
  `admin_roles`, whose override the audit records), and transaction control or DDL smuggled
  after another statement by an agent.
- the addon: the pipeline's `statement` and `api_call` hooks that apply all of this (`addon.py`).
- least privilege upstream: a target's login may not be a superuser or reach the server's
  files or programs unless the target says `allow_superuser` (`upstream.py`; start-up, check).
"""

from wardgate.policy.addon import PolicyAddon
from wardgate.policy.rules import Facts, Rule, RuleSet

__all__ = ["Facts", "PolicyAddon", "Rule", "RuleSet"]
