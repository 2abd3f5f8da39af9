"""How participant calls travel.

- ``call``: the transport-neutral order the worker makes (``CallRequest``) and
  the ``Transport`` face every transport offers;
- ``protocol``: the participant protocol over HTTP (header names, idempotency key,
  callback path), the one place that spells it;
- ``client``: the HTTP transport; ``faults``: fault rules applied to its requests,
  picked by a ``FaultPicker`` the composition root hands in.

A second transport (a message broker) is a new module offering ``Transport``'s
``call`` and ``aclose``, built by ``orchestrator.runtime`` instead of the HTTP
client; the worker does not change. The transport imports nothing of the store,
the worker, the API or the CLI.
"""
