"""Pkcs11Partition: the session pool, recovery, key generation, listing and signing."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pkcs11
from asn1crypto.core import ObjectIdentifier
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as CKK
from pkcs11.exceptions import ObjectHandleInvalid, PKCS11Error

from hsmgate.hsm import softcrypto
from hsmgate.hsm.base import (
    BackendUnavailable,
    Capabilities,
    HsmError,
    InvalidInput,
    KeyAttributes,
    KeyInfo,
    KeyNotFound,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    Partition,
    PinRefused,
    SignMechanism,
    TokenIdentity,
    TokenNotFound,
    UnsupportedByBackend,
)
from hsmgate.hsm.pkcs11.capabilities import TokenMechanisms
from hsmgate.hsm.pkcs11.errors import (
    CKR_MEANINGS,
    CKR_NAMES,
    CKR_OK,
    CKR_USER_ALREADY_LOGGED_IN,
    HANDLE_GONE,
    PIN_REFUSED,
    UNKNOWN,
    Recovery,
    ckr_name,
    translate,
)
from hsmgate.hsm.pkcs11.keycache import GenerationSource, KeyCache, KeyEntry, Stamp
from hsmgate.hsm.pkcs11.keyobjects import (
    ATTRIBUTE_MAPPER,
    HISTORY_FLAGS,
    OPTIONAL_ATTRIBUTES,
    PRIVATE_FLAGS,
    PUBLIC_FLAGS,
    TEMPLATE_REFUSED,
    UNREPORTED_DEFAULTS,
    hmac_type,
    public_facts,
)
from hsmgate.hsm.pkcs11.mechanisms import (
    AES_SIZES,
    FIXED_SECRET_SIZES,
    GENERATION,
    HMAC_KEYS,
    KEY_TYPES,
    M,
    ckm_name,
)
from hsmgate.hsm.pkcs11.module import Pkcs11Module
from hsmgate.hsm.pkcs11.operations import Pkcs11Operations
from hsmgate.hsm.pkcs11.session import CallContext, Lease, SessionCall
from hsmgate.hsm.pkcs11.signing import (
    Encoding,
    describe_mechanism,
    digest_info,
    emsa_pss,
    hash_of,
    plan_signature,
    refuse_context,
)

T = TypeVar("T")

#: CK_USER_TYPE of C_Login: the normal user.
CKU_USER = 1
#: Minimum seconds between two run-time re-initialisations of a module (token missing).
REINIT_INTERVAL = 1.0
#: Token look-ups when a partition is created. SoftHSM2 processes sharing a token directory sometimes miss
#: the token in C_Initialize while another process rewrites its files (seen in a few starts in 50).
STARTUP_ATTEMPTS = 4
#: Seconds a call waits for a free session before giving up.
SESSION_WAIT = 30.0
#: Keys remembered per partition and process (handle and description; ``HSMGATE_KEY_CACHE_SIZE``).
KEY_CACHE_SIZE = 50_000
#: Sessions per partition and process (``HSMGATE_PKCS11_POOL_SIZE``): Starlette's threadpool runs at most 40
#: operations of a worker at once, so 40 sessions never make one of them wait.
POOL_SIZE = 40
#: ``_call`` actions that create or delete the key they name (its key-cache entry is dropped).
KEY_CHANGES = frozenset({"generation", "deletion", "import", "unwrapping"})


def _text(value: bytes | str) -> str:
    """A CK_TOKEN_INFO text field (blank-padded; python-pkcs11 gives the serial as bytes)."""
    return (value.decode("ascii", "replace") if isinstance(value, bytes) else value).strip()


class _TokenMissing(Exception):
    pass


_OPEN_NEW = "open a new session"


@dataclass(slots=True)
class _Waiter:
    granted: Lease | str | None = None  # an idle session, or _OPEN_NEW


class PoolObserver(Protocol):
    """Watches a partition's session pool (``hsmgate/metrics.py``); called with the pool's lock held
    or right after, so it must be quick."""

    def pool_size(self, size: int) -> None:
        """The most sessions the pool opens."""

    def sessions(self, open_: int, in_use: int, waiting: int) -> None:
        """Sessions open (or being opened), of them checked out, and threads waiting for one."""


class _Unobserved:
    def pool_size(self, size: int) -> None:
        return None

    def sessions(self, open_: int, in_use: int, waiting: int) -> None:
        return None


@dataclass(slots=True)
class _Pool:
    """Sessions of one partition in one process; waiting threads are served first come, first served."""

    pid: int = field(default_factory=os.getpid)
    cond: threading.Condition = field(default_factory=threading.Condition)
    idle: list[Lease] = field(default_factory=list)
    waiters: deque[_Waiter] = field(default_factory=deque)
    open: int = 0
    epoch: int = 0


# ------------------------------------------------------------------------------------------- the partition
class Pkcs11Partition(Pkcs11Operations, Partition):
    """A partition on one token of a PKCS#11 module, chosen by token label or by slot id.

    ``key_generation`` (the state database's ``KeyGeneration.current``) tells when keys may have changed
    elsewhere: while it answers the same token, keys are described and signed with from the key cache
    (``key_cache_size`` entries) without a look-up on the token. Without it (a process with no state
    database), :meth:`get` always reads the token, and signing uses a remembered handle until this partition
    changes a key or the token refuses the handle (the key was deleted or replaced by another application)."""

    def __init__(self, name: str, *, module_path: str, token_label: str | None = None,
                 slot_id: int | None = None, pin: str, pool_size: int = POOL_SIZE,
                 pool_observer: PoolObserver | None = None, key_generation: GenerationSource | None = None,
                 key_cache_size: int = KEY_CACHE_SIZE) -> None:
        if (token_label is None) == (slot_id is None):
            raise ValueError("give exactly one of token_label and slot_id")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.name = name
        self._token_label, self._slot_id, self._pin, self._pool_size = token_label, slot_id, pin, pool_size
        self._where = f"token '{token_label}'" if token_label is not None else f"slot {slot_id}"
        self._closed, self._pool, self._generate_lock = False, _Pool(), threading.Lock()
        self._pin_refused: str | None = None  # never retry a refused PIN: tokens lock it after a few tries
        self._generation, self._keys = key_generation, KeyCache(key_cache_size)
        self._observer: PoolObserver = pool_observer if pool_observer is not None else _Unobserved()
        self._observer.pool_size(pool_size)
        self._module, self._module_path = Pkcs11Module.load(module_path), module_path
        lease = self._checkout(startup=True)
        try:
            self._mechanisms, self._ranges = self._read_mechanisms(lease.session)
            token = lease.session.token
            self._identity = TokenIdentity(backend="pkcs11", token_label=str(token.label).strip(),
                                           token_serial=_text(token.serial))
        finally:
            self._checkin(lease, healthy=True)
        self._token = TokenMechanisms(self._mechanisms, self._ranges)
        self._capabilities = self._token.capabilities()
        self._probed: Capabilities | None = None
        self._probe_lock = threading.Lock()

    # --------------------------------------------------------------------------------------------- public API
    def identity(self) -> TokenIdentity:
        return self._identity

    def capabilities(self) -> Capabilities:
        """Key generation and signing from the mechanism list; the optional operations are added on first
        use, after a round trip with throwaway session keys (see :meth:`_probe_operations`)."""
        if self._probed is None:
            with self._probe_lock:
                if self._probed is None:
                    operations = self._probe_operations()
                    if operations is None:
                        return self._capabilities  # the token is unreachable now; probe again next time
                    self._probed = operations
        return self._probed

    def generate(self, label: str, spec: KeySpec, attributes: KeyAttributes,
                 key_id: bytes | None = None) -> KeyInfo:
        if not label:
            raise InvalidInput("a key label must not be empty")
        p11_type, gen_mechanism, pair, size = self._check_spec(spec)
        private = {a: getattr(attributes, f) for f, a in PRIVATE_FLAGS.items()} | {Attribute.PRIVATE: True}
        public = {a: getattr(attributes, f) for f, a in PUBLIC_FLAGS.items()}
        public |= {Attribute.PRIVATE: False, Attribute.MODIFIABLE: attributes.modifiable}
        common = {"id": key_id or secrets.token_bytes(16), "label": label, "store": True, "capabilities": 0}
        if spec.key_type is not KeyType.DSA:  # DSA: python-pkcs11 makes domain parameters, then the pair
            common["mechanism"] = gen_mechanism
        if spec.curve_oid:
            public[Attribute.EC_PARAMS] = ObjectIdentifier(spec.curve_oid).dump()

        def run(lease: Lease, ctx: CallContext) -> KeyInfo:
            session, ctx.mechanism = lease.session, ckm_name(gen_mechanism)
            self._refuse_taken(session, label)
            private_t, secret_t = dict(private), public | private  # a secret key is CKA_PRIVATE
            if spec.key_type in HMAC_KEYS:
                secret_t[Attribute.ALLOWED_MECHANISMS] = [HMAC_KEYS[spec.key_type].mechanism]
            while True:
                try:
                    if not pair:
                        key = session.generate_key(p11_type, size, template=secret_t, **common)
                        return self._describe(session, label, key, None)
                    pub, priv = session.generate_keypair(p11_type, size, public_template=public,
                                                         private_template=private_t, **common)
                    return self._describe(session, label, priv, pub)
                except TEMPLATE_REFUSED:  # retry once without the attributes a 2.20 module may not know
                    if not any(a in t for t in (private_t, secret_t) for a in OPTIONAL_ATTRIBUTES):
                        raise
                    private_t, secret_t = ({a: v for a, v in t.items() if a not in OPTIONAL_ATTRIBUTES}
                                           for t in (private_t, secret_t))

        with self._generate_lock:  # the label check and the creation belong together
            return self._call("generation", label, run)

    def list_labels(self) -> list[str]:
        def run(lease: Lease, ctx: CallContext) -> list[str]:
            labels: set[str] = set()
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY, ObjectClass.PUBLIC_KEY):
                for obj in lease.session.get_objects({Attribute.CLASS: cls}):
                    try:
                        labels.add(obj[Attribute.LABEL])
                    except ObjectHandleInvalid:  # destroyed meanwhile by another application of the token
                        continue
            return sorted(label for label in labels if label)
        return self._call("listing keys", None, run)

    def get(self, label: str) -> KeyInfo:
        """From the key cache while the key generation vouches for it; else read (or re-checked) on the
        token. Without a key generation, always checked on the token (another application may have replaced
        the key)."""
        stamp = self._stamp()
        entry = self._keys.get(label)
        if entry is not None and self._generation is not None and entry.stamp == stamp:
            return entry.info
        return self._call("reading", label,
                          lambda lease, ctx: self._entry(lease, label, stamp, trusted=False).info)

    def delete(self, label: str) -> None:
        def run(lease: Lease, ctx: CallContext) -> None:
            session = lease.session
            key = self._key_object(session, label)
            attrs = key.get_attributes([Attribute.CLASS, Attribute.DESTROYABLE, Attribute.ID,
                                        Attribute.KEY_TYPE])
            if attrs.get(Attribute.DESTROYABLE, True) is False:
                raise OperationNotPermitted(f"key '{label}' is not destroyable (CKA_DESTROYABLE is false)")
            private = attrs[Attribute.CLASS] == ObjectClass.PRIVATE_KEY
            public = self._public_of(session, key, attrs) if private else None
            key.destroy()
            if public is not None:
                public.destroy()
        self._call("deletion", label, run)

    def sign(self, label: str, mechanism: SignMechanism, data: bytes, *,
             context: bytes | None = None) -> bytes:
        alg = hash_of(mechanism)
        refuse_context(mechanism, context)
        if mechanism.deterministic:
            raise UnsupportedByBackend(f"{describe_mechanism(mechanism)}: a PKCS#11 token does not promise "
                                       "RFC 6979 deterministic nonces")
        if mechanism.prehashed and alg and len(data) != alg.digest_size:
            raise InvalidInput(f"a prehashed {alg} payload must be {alg.digest_size} bytes, got {len(data)}")

        stamp = self._stamp()

        def attempt(lease: Lease, ctx: CallContext, entry: KeyEntry) -> bytes:
            info = entry.info
            plan = plan_signature(self._mechanisms, info.key_type, mechanism)
            if plan is None:
                raise UnsupportedByBackend(f"{describe_mechanism(mechanism)} is not available for the "
                                           f"{info.key_type} key '{label}' on {self._where}")
            if not info.attributes.sign:
                raise OperationNotPermitted(f"key '{label}' may not sign (CKA_SIGN is false)")
            ctx.mechanism = ckm_name(plan.mechanism)
            payload = hashlib.new(alg.value, data).digest() if plan.hash_here and alg else data
            if plan.mechanism in (M.RSA_PKCS, M.RSA_X_509):
                bits = info.size or 0
                if plan.encode is Encoding.DIGEST_INFO and alg:
                    payload = digest_info(alg, payload)
                elif plan.encode is Encoding.EMSA_PSS and alg:
                    payload = emsa_pss(payload, alg, bits)
                if plan.mechanism == M.RSA_PKCS and len(payload) > (bits + 7) // 8 - 11:
                    raise InvalidInput(f"{len(payload)} bytes are too long for PKCS#1 v1.5 padding with the "
                                       f"{bits}-bit key '{label}' (CKR_DATA_LEN_RANGE)")
            signature = self._module.sign(lease.session.handle, plan.mechanism, plan.param, entry.handle, payload)
            if not plan.der:
                return bytes(signature)
            half = len(signature) // 2  # r || s -> DER, as pkcs11.util.ec.encode_ecdsa_signature but in C
            return encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                        int.from_bytes(signature[half:], "big"))

        def run(lease: Lease, ctx: CallContext) -> bytes:
            entry = self._entry(lease, label, stamp, trusted=True)
            try:
                return attempt(lease, ctx, entry)
            except PKCS11Error as exc:
                if ckr_name(exc) not in HANDLE_GONE:
                    raise
                # the remembered handle is gone: the key was deleted or replaced where we could not see it
                self._keys.forget(label, entry)
                return attempt(lease, ctx, self._look_up(lease.session, label, stamp))
        return self._call("signing", label, run)

    def verify(self, label: str, mechanism: SignMechanism, data: bytes, signature: bytes,
               *, context: bytes | None = None) -> bool:
        """Checked with ``cryptography`` against the public key read from the token; accepts exactly the
        mechanisms :meth:`sign` can produce."""
        refuse_context(mechanism, context)
        info = self.get(label)
        if not self._capabilities.can_sign(info.key_type, mechanism):
            raise UnsupportedByBackend(f"{describe_mechanism(mechanism)} is not available for the "
                                       f"{info.key_type} key '{label}' on {self._where}")
        if info.public_key is None:
            raise UnsupportedByBackend(f"key '{label}' has no public key on {self._where}")
        return softcrypto.verify(softcrypto.load_spki(info.public_key), mechanism, data, signature)

    def generate_random(self, length: int) -> bytes:
        if length < 0:
            raise InvalidInput("the number of random bytes must not be negative")
        if length == 0:
            return b""
        return self._call("random generation", None,
                          lambda lease, ctx: lease.session.generate_random(length * 8))

    def close(self) -> None:
        self._closed = True
        self._keys.clear()
        with self._pool.cond:
            idle, self._pool.idle = self._pool.idle, []
            self._pool.open -= len(idle)
            self._pool.cond.notify_all()
        self._close_stale(idle)

    # ------------------------------------------------------------------------------------ sessions, recovery
    def _call(self, action: str, label: str | None, run: SessionCall[T]) -> T:
        """Run ``run(lease, ctx)`` on a pooled session; the one place python-pkcs11 errors are mapped. A call
        that creates or deletes the key ``label`` drops its key-cache entry before and after."""
        if label is None or action not in KEY_CHANGES:
            return self._on_session(action, label, run)
        self._keys.forget(label)
        try:
            return self._on_session(action, label, run)
        finally:
            self._keys.forget(label)

    def _on_session(self, action: str, label: str | None, run: SessionCall[T]) -> T:
        ctx, module, last = CallContext(action, label), self._module, "CKR_SESSION_HANDLE_INVALID"
        for _ in range(self._pool_size + 2):
            lease = self._checkout()
            self._report(self._pool)
            healthy, recovery = True, None  # type: bool, Recovery | None
            module.enter_shared()
            try:
                if lease.generation != module.generation:  # opened before a re-initialisation
                    healthy = False
                    continue
                return run(lease, ctx)
            except PKCS11Error as exc:
                last = ckr_name(exc)
                recovery = CKR_MEANINGS.get(last, UNKNOWN).recovery
                # a key's handle invalid: the key was deleted meanwhile, unless the token went with it
                token_gone = last in HANDLE_GONE and not self._token_answers(lease.session)
                if recovery is None and not token_gone:
                    raise translate(ctx, last) from None
                if recovery is Recovery.TOKEN and self._token_answers(lease.session):
                    raise translate(ctx, last, token_answers=True) from None
                healthy = False
                if recovery is Recovery.TOKEN or token_gone:
                    with self._pool.cond:
                        self._pool.epoch += 1  # every session of this partition is suspect now
                    raise translate(ctx, last, token_gone=token_gone) from None
            finally:
                module.leave_shared()
                self._checkin(lease, healthy)
                self._report(self._pool)
                if recovery is Recovery.MODULE:
                    module.reinitialize(lease.generation, 0.0)
        raise translate(ctx, last)

    def _checkout(self, startup: bool = False) -> Lease:
        self._module.ensure_process()
        if self._pool.pid != os.getpid():
            self._pool = _Pool()  # a forked child: the parent's sessions are not ours
        pool, stale = self._pool, list[Lease]()
        try:
            with pool.cond:
                granted = None if pool.waiters else self._grant(pool, stale)
                if granted is None:
                    waiter, deadline = _Waiter(), time.monotonic() + SESSION_WAIT
                    pool.waiters.append(waiter)
                    self._report(pool)
                    while waiter.granted is None and not self._closed:
                        if not pool.cond.wait(deadline - time.monotonic()):
                            break
                    granted = waiter.granted
                    if granted is None:
                        pool.waiters.remove(waiter)
                        raise BackendUnavailable(f"partition '{self.name}' is closed" if self._closed else
                                                 f"no free session on {self._where} in {SESSION_WAIT:.0f} s")
        finally:
            self._close_stale(stale)
        if isinstance(granted, Lease):
            return granted
        try:
            return self._open_lease(pool.epoch, startup)
        except BaseException:
            with pool.cond:
                pool.open -= 1
                self._hand_out(pool, stale)
            self._close_stale(stale)
            raise

    def _report(self, pool: _Pool) -> None:
        """Tell the observer the pool's state (read without the lock: integers, for monitoring)."""
        self._observer.sessions(pool.open, pool.open - len(pool.idle), len(pool.waiters))

    def _checkin(self, lease: Lease, healthy: bool) -> None:
        pool, stale = self._pool, list[Lease]()
        with pool.cond:
            if healthy and not self._closed and self._fresh(lease):
                pool.idle.append(lease)
            else:
                pool.open -= 1
                stale.append(lease)
            self._hand_out(pool, stale)
        self._close_stale(stale)

    def _grant(self, pool: _Pool, stale: list[Lease]) -> Lease | str | None:
        """A fresh idle session, or leave to open one, or None (caller holds ``pool.cond``)."""
        if self._closed:
            raise BackendUnavailable(f"partition '{self.name}' is closed")
        while pool.idle:
            lease = pool.idle.pop()
            if self._fresh(lease):
                return lease
            pool.open -= 1
            stale.append(lease)
        if pool.open < self._pool_size:
            pool.open += 1
            return _OPEN_NEW
        return None

    def _hand_out(self, pool: _Pool, stale: list[Lease]) -> None:
        """Serve waiting threads in arrival order (caller holds ``pool.cond``)."""
        while pool.waiters and not self._closed:
            granted = self._grant(pool, stale)
            if granted is None:
                break
            pool.waiters.popleft().granted = granted
        pool.cond.notify_all()

    def _close_stale(self, stale: list[Lease]) -> None:
        while stale:
            self._close_lease(stale.pop())

    def _fresh(self, lease: Lease) -> bool:
        return lease.generation == self._module.generation and lease.epoch == self._pool.epoch

    @staticmethod
    def _token_answers(session: Any) -> bool:
        try:
            session.token.slot.get_token()
            return True
        except PKCS11Error:
            return False

    def _close_lease(self, lease: Lease) -> None:
        """Best-effort C_CloseSession, never for a session of an earlier initialisation (handle reuse)."""
        module = self._module
        module.enter_shared()
        try:
            if lease.generation == module.generation:
                lease.session.close()  # no C_Logout: pool sessions are opened without a PIN
        except PKCS11Error:
            pass
        finally:
            module.leave_shared()

    def _open_lease(self, epoch: int, startup: bool) -> Lease:
        """Open a session and log in; re-initialise the module when the token cannot be reached: once at
        run time, up to STARTUP_ATTEMPTS - 1 times (with short pauses) when the partition is created."""
        module, failure = self._module, "CKR_TOKEN_NOT_PRESENT"
        attempts = STARTUP_ATTEMPTS if startup else 2
        if self._pin_refused:
            raise PinRefused(f"Login to {self._where} failed earlier: the token refused the PIN "
                                     f"({self._pin_refused}); reconfigure the partition.")
        for attempt in range(attempts):
            generation = module.generation
            module.enter_shared()
            try:
                session = self._find_token().open(rw=True, attribute_mapper=ATTRIBUTE_MAPPER)
                pin = self._pin.encode()
                rv = module.raw("C_Login", session.handle, CKU_USER, pin, len(pin))
                if rv in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN):
                    return Lease(session, generation, epoch)
                session.close()
                failure = CKR_NAMES.get(rv, f"CKR_0x{rv:X}")
                if failure in PIN_REFUSED:
                    self._pin_refused = failure
                    raise PinRefused(f"Login to {self._where} failed: the token refused the PIN "
                                             f"({failure}).")
            except _TokenMissing:
                failure = "CKR_TOKEN_NOT_PRESENT"
            except PKCS11Error as exc:
                failure = ckr_name(exc)
            finally:
                module.leave_shared()
            if attempt == attempts - 1:
                break
            time.sleep(0.1 * attempt if startup else 0)
            if not module.reinitialize(generation, 0.0 if startup else REINIT_INTERVAL):
                break
        if failure == "CKR_TOKEN_NOT_PRESENT":
            raise TokenNotFound(f"No {self._where} is present in PKCS#11 module {self._module_path}.")
        raise BackendUnavailable(f"The {self._where} of PKCS#11 module {self._module_path} is not "
                                 f"reachable ({failure}).")

    def _find_token(self) -> Any:
        tokens = []
        for slot in self._module.lib.get_slots(token_present=True):
            if self._slot_id is not None and slot.slot_id != self._slot_id:
                continue
            try:
                token = slot.get_token()
            except (pkcs11.exceptions.TokenNotPresent, pkcs11.exceptions.TokenNotRecognised):
                continue
            if self._token_label is None or token.label == self._token_label:
                tokens.append(token)
        if len(tokens) > 1:
            raise TokenNotFound(f"{len(tokens)} tokens are labelled '{self._token_label}'; set slot_id.")
        if not tokens:
            raise _TokenMissing
        return tokens[0]

    # -------------------------------------------------------------------------------------------- key objects
    def _keys_labelled(self, session: Any, label: str) -> list[Any]:
        return [obj for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY)
                for obj in session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label})]

    @staticmethod
    def _public_only(session: Any, label: str) -> list[Any]:
        """Public key objects labelled ``label`` (callers check that no private or secret key has it)."""
        return list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label}))

    def _key_object(self, session: Any, label: str, *, public_only: bool = True) -> Any:
        """The private or secret key labelled ``label``; else, with ``public_only``, a public key object
        that stands alone (an imported public key)."""
        found = self._keys_labelled(session, label)
        if not found and public_only:
            found = self._public_only(session, label)
        if not found:
            session.token.slot.get_token()  # a lost token fails here; C_FindObjects just finds nothing
            raise KeyNotFound(f"no key labelled '{label}' on {self._where}")
        if len(found) > 1:
            raise HsmError(f"{len(found)} keys are labelled '{label}' on {self._where}; labels must be "
                           "unique")
        return found[0]

    def _stamp(self) -> Stamp | None:
        """The stamp key-cache entries are stored and trusted under (``keycache.py``); None while the key
        generation is unknown (trust no entry). Read before a look-up, never after."""
        if self._generation is None:
            token: object | None = "no key generation"
        else:
            token = self._generation()
            if token is None:
                return None
        return token, self._module.generation, self._pool.epoch

    def _entry(self, lease: Lease, label: str, stamp: Stamp | None, *, trusted: bool) -> KeyEntry:
        """The key labelled ``label`` on ``lease``: the cached entry when its stamp is ``stamp`` (and
        ``trusted``); when only the key generation moved since, the cached entry once one
        C_GetAttributeValue shows its handle still names an object with the same label and CKA_ID; else a
        look-up (C_FindObjects and the description)."""
        entry = self._keys.get(label)
        if entry is None or stamp is None or entry.stamp[1:] != (lease.generation, lease.epoch):
            return self._look_up(lease.session, label, stamp)
        if trusted and entry.stamp == stamp:
            return entry
        same = {Attribute.LABEL: label.encode(), Attribute.ID: entry.info.key_id or b""}
        if not self._module.has_attributes(lease.session.handle, entry.handle, same):
            self._keys.forget(label, entry)
            return self._look_up(lease.session, label, stamp)
        if entry.stamp != stamp:
            entry = KeyEntry(entry.handle, entry.info, stamp)
            self._keys.put(label, entry)
        return entry

    def _look_up(self, session: Any, label: str, stamp: Stamp | None) -> KeyEntry:
        """Find and describe the key labelled ``label``; remembered under ``stamp`` unless it is None."""
        key = self._key_object(session, label)
        entry = KeyEntry(int(key.handle), self._describe(session, label, key), stamp or ("unknown", -1, -1))
        if stamp is not None:
            self._keys.put(label, entry)
        return entry

    @staticmethod
    def _public_of(session: Any, key: Any, attrs: dict[int, Any]) -> Any | None:
        """The public half of a private key: same CKA_ID (and label), else same label; same key type."""
        label, key_id = key[Attribute.LABEL], attrs.get(Attribute.ID) or None
        searches = [{Attribute.ID: key_id, Attribute.LABEL: label}, {Attribute.ID: key_id}] if key_id else []
        for template in [*searches, {Attribute.LABEL: label}]:
            for candidate in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, **template}):
                if candidate[Attribute.KEY_TYPE] == attrs[Attribute.KEY_TYPE]:
                    return candidate
        return None

    def _describe(self, session: Any, label: str, key: Any, public: Any | None = None) -> KeyInfo:
        """KeyInfo read back from the token (secret values are never read)."""
        attrs = key.get_attributes([Attribute.CLASS, Attribute.KEY_TYPE, Attribute.ID,
                                    *PRIVATE_FLAGS.values(), *HISTORY_FLAGS.values()])
        secret = attrs[Attribute.CLASS] == ObjectClass.SECRET_KEY
        if attrs[Attribute.CLASS] == ObjectClass.PUBLIC_KEY:  # a public key alone: no private-key rights
            attrs = {a: v for a, v in attrs.items() if a not in (Attribute.SENSITIVE, Attribute.EXTRACTABLE)}
            public = key
            attrs |= {Attribute.SIGN: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False,
                      Attribute.DERIVE: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: False}
        if secret:
            attrs |= key.get_attributes([*PUBLIC_FLAGS.values(), Attribute.VALUE_LEN,
                                         Attribute.ALLOWED_MECHANISMS])
            public_attrs = attrs
        else:
            public = public or self._public_of(session, key, attrs)
            public_attrs = public.get_attributes(list(PUBLIC_FLAGS.values())) if public is not None else {}
        flags = {f: bool(attrs.get(a, UNREPORTED_DEFAULTS.get(f, False)))
                 for f, a in (PRIVATE_FLAGS | HISTORY_FLAGS).items()}
        flags |= {f: bool(public_attrs.get(a, False)) for f, a in PUBLIC_FLAGS.items()}
        ckk = attrs[Attribute.KEY_TYPE]
        key_type = hmac_type(attrs) if ckk == CKK.GENERIC_SECRET else KEY_TYPES.get(ckk)
        if key_type is None:
            raise UnsupportedByBackend(f"key '{label}' on {self._where} has an unsupported key type "
                                       f"(0x{ckk:X})")
        if secret:
            size = (attrs.get(Attribute.VALUE_LEN, 0) * 8 or FIXED_SECRET_SIZES.get(key_type)
                    or self._measure_secret(session, key, attrs))
            curve, spki = None, None
        else:
            size, curve, spki = public_facts(key_type, key, public)
        return KeyInfo(label=label, key_type=key_type, attributes=KeyAttributes(**flags), size=size,
                       curve_oid=curve, key_id=attrs.get(Attribute.ID) or None, public_key=spki,
                       created_at=None)

    # ------------------------------------------------------------------------------------------- capabilities
    def _read_mechanisms(self, session: Any) -> tuple[frozenset[int], dict[int, tuple[int, int]]]:
        """The slot's mechanisms, and (min, max) key sizes of those generation and HMAC ones we use."""
        module = self._module
        module.enter_shared()
        try:
            slot = session.token.slot
            mechs = frozenset(int(m) for m in slot.get_mechanisms())
            wanted = {g.mechanism for g in GENERATION.values()} | {h.mechanism for h in HMAC_KEYS.values()}
            infos = {m: slot.get_mechanism_info(m) for m in wanted & mechs}
            return mechs, {m: (i.min_key_length or 0, i.max_key_length or 0) for m, i in infos.items()}
        except PKCS11Error as exc:
            message = f"Reading the mechanisms of {self._where} failed ({ckr_name(exc)})."
            raise BackendUnavailable(message) from None
        finally:
            module.leave_shared()

    def _fits(self, mechanism: int, size: int) -> bool:
        return self._token.fits(mechanism, size)

    def _check_spec(self, spec: KeySpec) -> tuple[int, Mechanism, bool, int | None]:
        """(PKCS#11 key type, generation mechanism, pair?, size) for ``spec``, else UnsupportedByBackend.
        RSA takes any size in the token's range; EC/ED only the curves of the capability table."""
        if spec.key_type not in GENERATION:
            raise UnsupportedByBackend(f"{spec.key_type} keys cannot be generated on {self._where}")
        p11_type, mechanism, pair = GENERATION[spec.key_type]
        size = spec.size or 0
        if spec.key_type in (KeyType.EC, KeyType.ED):
            curves = softcrypto.EC_CURVES if spec.key_type is KeyType.EC else softcrypto.ED_CURVES
            ok, size = spec.curve_oid in curves and mechanism in self._mechanisms, 0
        elif spec.key_type in HMAC_KEYS:
            alg, hmac, _ = HMAC_KEYS[spec.key_type]
            size = size or alg.digest_size * 8
            ok = size % 8 == 0 and self._fits(hmac, size // 8) and mechanism in self._mechanisms
        elif spec.key_type in (KeyType.AES, KeyType.CAMELLIA):
            ok = size in AES_SIZES and self._fits(mechanism, size // 8)
        elif spec.key_type is KeyType.TDEA:
            ok, size = size in (0, 192) and mechanism in self._mechanisms, 0
        else:
            ok = self._fits(mechanism, size) and (spec.key_type is KeyType.RSA or M.DSA_PARAMETER_GEN in
                                                  self._mechanisms)
        if not ok:
            what = f"curve {spec.curve_oid}" if spec.curve_oid else f"size {spec.size}"
            raise UnsupportedByBackend(f"{spec.key_type} keys with {what} cannot be generated on "
                                       f"{self._where}")
        return p11_type, mechanism, pair, size or None


