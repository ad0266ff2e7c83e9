"""PKCS#11 partition: keys on any PKCS#11 module, driven through python-pkcs11.

Threads. python-pkcs11 0.10.1 always calls ``C_Initialize(NULL)``, so SoftHSM2 (and other modules) assume a
single-threaded application while python-pkcs11 releases the GIL around every C call. Each process therefore
keeps one :class:`~hsmgate.hsm.pkcs11.module.Pkcs11Module` per module file: right after python-pkcs11 loaded
it, the module is finalised and initialised again with ``CKF_OS_LOCKING_OK`` through its own function list
(ctypes with ``RTLD_NOLOAD``, so it is the same library instance, which is checked). A module that answers
``CKR_CANT_LOCK`` gets all calls of the process serialised instead. A partition keeps a pool of R/W sessions,
handed out first come, first served; each new session logs in (the token answers "already logged in" after
the first). A session remembers the signing keys it has found by label and confirms CKA_LABEL and CKA_ID at
each use, since handles of deleted objects may be reused. A forked child re-initialises the module before its
first call.

Recovery. Every python-pkcs11 error passes :func:`~hsmgate.hsm.pkcs11.errors.translate`, which names the key,
mechanism and ``CKR_`` code. A stale session (closed underneath, logged out) is replaced and the call
retried; a module finalised underneath is initialised again and the call retried. A lost token gives
:class:`BackendUnavailable` and drops the partition's sessions; the next call opens new ones and, if the token
cannot be found, re-initialises the module (at most every :data:`REINIT_INTERVAL` s: SoftHSM2 rescans its
token directory only in ``C_Initialize``; other partitions of the module in this process lose their sessions
and retry).

HMAC keys are ``CKK_GENERIC_SECRET`` with ``CKA_ALLOWED_MECHANISMS = [CKM_SHAx_HMAC]``: SoftHSM2 stores a
requested ``CKK_SHAx_HMAC`` as generic secret, and the allowed mechanism both records and enforces the hash.

Modules, each importing only those listed before it:

* ``session``: :class:`Lease` and :class:`CallContext`, what every call on a pooled session receives;
* ``errors``: the CKR table (exception, reason, recovery) and :func:`translate`;
* ``mechanisms``: hash, signature-scheme, HMAC, key-generation and key-type tables, :func:`ckm_name`;
* ``signing``: how a SignMechanism runs on a token (:func:`plan_signature`), DigestInfo and EMSA-PSS;
* ``capabilities``: :class:`TokenMechanisms`: the key specs and signing a token's mechanism list allows;
* ``keyobjects``: attribute tables and the facts read from key objects (size, curve, public key);
* ``module``: the process-wide :class:`Pkcs11Module` and :func:`describe_module`;
* ``operations``: the mixin with encrypt/decrypt, wrap/unwrap, HMAC, import/export and the capability probe;
* ``partition``: :class:`Pkcs11Partition`: sessions, recovery, keys, signing.
"""

from hsmgate.hsm.pkcs11 import partition
from hsmgate.hsm.pkcs11.mechanisms import M
from hsmgate.hsm.pkcs11.module import describe_module
from hsmgate.hsm.pkcs11.partition import Pkcs11Partition

__all__ = ["M", "Pkcs11Partition", "describe_module", "partition"]
