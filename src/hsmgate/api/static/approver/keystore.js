// The approver's identity in this browser's IndexedDB: the WebCrypto private key (a CryptoKey made
// non-extractable at import, so no script, this app's included, can read it out), the certificate,
// the public key and, where the server wants one, the API key. Nothing else is kept: the PKCS#12,
// the backup password and the transport password are dropped after registration.

const DATABASE = "hsmgate-approver";
const STORE = "identity";
const KEY = "approver";

function openDatabase() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transaction(mode, action) {
  const database = await openDatabase();
  try {
    return await new Promise((resolve, reject) => {
      const tx = database.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    database.close();
  }
}

/** The stored identity {name, privateKey, certificate, publicKey, apiKey}, or undefined. */
export function loadIdentity() {
  return transaction("readonly", (store) => store.get(KEY));
}

/** Store `identity`; its privateKey must be a non-extractable CryptoKey. */
export function saveIdentity(identity) {
  if (!(identity.privateKey instanceof CryptoKey) || identity.privateKey.extractable) {
    throw new Error("only a non-extractable private key is kept");
  }
  return transaction("readwrite", (store) => store.put(identity, KEY));
}

/** Remove the identity from this browser. */
export function forgetIdentity() {
  return transaction("readwrite", (store) => store.delete(KEY));
}
