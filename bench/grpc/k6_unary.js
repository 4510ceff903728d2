import grpc from 'k6/net/grpc';
const client = new grpc.Client();
client.load(['../../runner/demo'], 'shop.proto');  // run from bench/grpc/
export const options = { vus: 50, duration: '15s' };
export default function () {
  if (__ITER === 0) { client.connect(__ENV.TARGET, { plaintext: true }); }
  const r = client.invoke('shop.Catalog/GetItem', { id: 2 });
  if (r.status !== grpc.StatusOK) { throw new Error('status ' + r.status); }
}
