// Node 20 lacks Promise.withResolvers (Node 22 has it), which js-libp2p 3
// uses; this is the standard polyfill. Imported first by peer.mjs.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
