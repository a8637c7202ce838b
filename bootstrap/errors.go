package bootstrap

import "errors"

// Sentinel errors; check them with errors.Is.
var (
	// ErrBadAddr is wrapped by every error ParseAddrs and ParseAddrsFile
	// return for an entry that is not a usable bootstrap address. The
	// message names the entry (index or file:line), its text and what is
	// wrong.
	ErrBadAddr = errors.New("bad bootstrap address")

	// ErrCorruptBackup is wrapped by the error loading the backup peers
	// file when it exists but its content is unusable: not JSON, an
	// unsupported version, a bad peer entry, or no usable peer at all. The
	// message names the file and what is wrong. The Bootstrapper logs it
	// as a warning, reports it through BackupLoadErr and carries on; the
	// file is left as it is until a later successful save replaces it.
	ErrCorruptBackup = errors.New("corrupt backup peers file")

	// ErrNoBootstrapPeers is returned by Bootstrap and Recover when no
	// bootstrap or backup peer could be reached (or none is configured),
	// and by Probe when it has no peer to probe. The error joins each
	// peer's cause ("<peer id>: <cause>"), so errors.Is also matches them
	// (resilience.ErrExhausted, a context error, ...).
	ErrNoBootstrapPeers = errors.New("no bootstrap peer could be reached")

	// ErrAllConnected is returned by Probe when every bootstrap and backup
	// peer is already connected (and in the routing table): a dial to one of
	// them would prove nothing about the network, so none is made.
	ErrAllConnected = errors.New("every bootstrap and backup peer is connected")

	// ErrClosed is returned by Bootstrap, Recover and Probe once Close has
	// been called, and is the cause with which Close ends calls still
	// running.
	ErrClosed = errors.New("bootstrap: closed")
)

// errNoBackupPeers is returned by saveBackup when no peer is usable, so
// that a node which lost its connections does not replace a good backup
// with an empty one.
var errNoBackupPeers = errors.New("no usable backup peers to save")

// errRecovered is the cause with which Recover ends the retry rounds still
// running once a peer was reached and the routing table holds MinPeers peers.
var errRecovered = errors.New("bootstrap: Recover: the routing table holds MinPeers peers; round no longer needed")
