"""The tamper-evident audit log: one hash-chained record per key operation, signed checkpoints,
and the verification of both.

Modules: ``chain.py`` (the record format and its hash), ``items.py`` (the signatures a record lists), ``recording.py`` (the trail that appends
records and signs checkpoints, and how one request records through it), ``verification.py`` (what
``hsmgate audit verify`` checks), ``log.py`` (the partition log the service role reads over HTTP). The store writes records in group commits (``store/audit.py``).

Record. ``time, partition, principal, auth_method, operation, key_label, request_id, outcome,
error_code`` — never payloads, signatures, secrets or key material. ``outcome`` is ``ok``,
``error`` (with the TSB ``error_code``) or ``started`` (see ordering below). Records of SKA
requests (creation, approval, rejection, cancellation, execution, expiry) also carry
``ska_request_id``, the request's id, hashed only when present so older records keep their hash;
the scheduler's records name the principal ``scheduler``. A signature request (single or batch)
is one record per key it names, whose ``items`` (``items.py``) list each signature: index,
algorithm, payload SHA-256, outcome.

Chain. Each partition has its own chain. A record's ``hash`` is SHA-256 (hex) over the canonical
JSON (keys sorted, no spaces, UTF-8) of its fields *including* ``seq`` and ``prev_hash``, the hash of
the record before it (64 zeros for the first). Changing a record changes its hash; removing or
reordering records breaks a ``prev_hash`` link or the ``seq`` sequence.

Checkpoints. Every HSMGATE_AUDIT_CHECKPOINT_INTERVAL records, at shutdown and on ``hsmgate audit
checkpoint``, the partition's attestation key signs (RSA PKCS#1 v1.5, SHA-256) the canonical JSON
``{"type":"hsmgate-audit-checkpoint","partition","seq","hash","time"}``. Someone able to rewrite the
database can recompute a whole chain; they cannot sign for the HSM, so the rewrite shows at the
next checkpoint. Records after the last checkpoint are protected by the chain only.

Anchors. Someone able to rewrite the database can also delete the checkpoints that would give a
rewrite away, or cut off the end of a chain with its checkpoint. So every checkpoint, once stored,
is also appended outside the database (``store/audit_anchors.py``: a file, optionally syslog), and
verification holds the database against those lines and wants a checkpoint every interval.

Ordering and fail-closed (HSMGATE_AUDIT_FAIL_CLOSED, default on):

* Operations that change nothing (sign, verify, describe, list, random) run first; their record,
  with the outcome, is written before the result is returned. If it cannot be written the caller
  gets 503 / 703 instead of the result: a signature is never handed out unaudited. One INSERT.
* Operations that change the partition (create, delete) write a ``started`` record first — if
  that fails nothing is executed — then run, then write the outcome record. Two INSERTs, for the
  rare administrative calls only.

With fail-closed off, a failed write is logged and the operation proceeds.

Waiting. "Written" means committed: :meth:`AuditTrail.record` returns once its record is durable.
Inside :func:`deferred_records` (``api/execution.py`` runs async routes' operations in one) the
outcome records are only submitted; the block's owner waits for them (an event loop without
holding a thread) before it returns the result, and the block's end waits for whatever it did not.
Records are group-committed by the store (``store/audit.py``); a record's ``time`` is taken when
its place in the chain is, so times follow ``seq``.
"""
