"""States and the rules that govern their transitions. Pure Python: no SQL, no GraphQL.

``backend.models`` reads the run under a lock, hands a ``Proposal`` to a policy from
``policies``, and writes whatever the policy decided.
"""
