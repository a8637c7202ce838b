// A js-libp2p peer for the interop tests: TCP + noise + yamux, identify,
// ping, and two kad-dht servers: /ipfs/kad/1.0.0 (Amino) and kubo's LAN
// protocol /ipfs/lan/kad/1.0.0, both keeping loopback addresses
// (passthroughMapper). Started by integration_test/interop_js_test.go.
//
//   node peer.mjs --key FILE --port N [--bootstrap MULTIADDR ...]
//
// The key file holds a protobuf-encoded private key (created if missing), so
// a restarted peer has the same peer ID and, on the same port, the same
// address. The peer dials each bootstrap address until it is connected and
// prints one JSON line whenever its state changes:
//   {"id": "...", "addrs": [...], "lan": [peer ids], "amino": [peer ids], "connections": N}
import './polyfill.mjs'
import { readFile, writeFile } from 'node:fs/promises'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

function parseArgs (argv) {
  const out = { bootstrap: [] }
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]]
    if (value === undefined) throw new Error(`${flag}: missing value`)
    switch (flag) {
      case '--key': out.key = value; break
      case '--port': out.port = Number(value); break
      case '--bootstrap': out.bootstrap.push(value); break
      default: throw new Error(`unknown flag ${flag}`)
    }
    i++
  }
  if (out.key === undefined || !Number.isInteger(out.port)) throw new Error('--key and --port are required')
  return out
}

async function loadKey (path) {
  try {
    return privateKeyFromProtobuf(await readFile(path))
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
  const key = await generateKeyPair('Ed25519')
  await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600 })
  return key
}

const dht = (protocol, prefix) => kadDHT({
  protocol,
  clientMode: false,
  peerInfoMapper: passthroughMapper, // keep loopback addresses
  logPrefix: `libp2p:${prefix}`,
  datastorePrefix: `/${prefix}`,
  metricsPrefix: prefix,
  initialQuerySelfInterval: 500
})

const args = parseArgs(process.argv.slice(2))
const node = await createLibp2p({
  privateKey: await loadKey(args.key),
  addresses: { listen: [`/ip4/127.0.0.1/tcp/${args.port}`] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    // Both DHTs ping a new contact at once before adding it: allow more
    // than ping's default single stream per connection.
    ping: ping({ maxInboundStreams: 16, maxOutboundStreams: 16 }),
    amino: dht('/ipfs/kad/1.0.0', 'amino'),
    lan: dht('/ipfs/lan/kad/1.0.0', 'lan')
  }
})

const self = node.peerId.toString()
function table (svc) {
  const out = []
  for (const p of svc.routingTable.kb.toIterable()) {
    const id = p.peerId.toString()
    if (id !== self) out.push(id)
  }
  return out.sort()
}

let last = ''
function report () {
  const line = JSON.stringify({
    id: self,
    addrs: node.getMultiaddrs().map(String),
    lan: table(node.services.lan),
    amino: table(node.services.amino),
    connections: node.getConnections().length
  })
  if (line !== last) {
    last = line
    process.stdout.write(line + '\n')
  }
}

// Dial each bootstrap peer until connected (it may not be up yet).
let stopping = false
async function bootstrap (addr) {
  const ma = multiaddr(addr)
  while (!stopping) {
    try {
      await node.dial(ma, { signal: AbortSignal.timeout(5000) })
      return
    } catch (err) {
      process.stderr.write(`dial ${addr}: ${err.message}\n`)
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  }
}

report()
const timer = setInterval(report, 200)
for (const addr of args.bootstrap) bootstrap(addr)

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    stopping = true
    clearInterval(timer)
    node.stop().finally(() => process.exit(0))
  })
}
