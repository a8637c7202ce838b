package dialer

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TrackerID returns the ConnectionID under which the Host keeps id's tracker in
// its ConnectionManager: id.String(), the usual base58 form. Use it to look
// trackers up: h.Manager().Get(dialer.TrackerID(id)).
func TrackerID(id peer.ID) string { return id.String() }

// keyCacheSize is the number of slots of a keyCache (a power of two).
const keyCacheSize = 4096

// keyCache memoizes TrackerID, which encodes and allocates, for the notifiee's
// allocation-free path. It is a direct-mapped, lock-free cache: a slot holds the
// last peer hashed to it; a collision only costs a new encoding. Its size is fixed.
type keyCache struct {
	seed  maphash.Seed
	slots [keyCacheSize]atomic.Pointer[keyEntry]
}

type keyEntry struct {
	id  peer.ID
	key string
}

func newKeyCache() *keyCache { return &keyCache{seed: maphash.MakeSeed()} }

// key returns TrackerID(id).
func (c *keyCache) key(id peer.ID) string {
	slot := &c.slots[maphash.String(c.seed, string(id))&(keyCacheSize-1)]
	if e := slot.Load(); e != nil && e.id == id {
		return e.key
	}
	k := TrackerID(id)
	slot.Store(&keyEntry{id: id, key: k})
	return k
}
