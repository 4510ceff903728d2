// A fast non-Python gRPC server for the bench: shop.Catalog/GetItem from runner/demo/shop.proto.
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const def = loader.loadSync(process.argv[2], {keepCase: true});
const shop = grpc.loadPackageDefinition(def).shop;
let calls = 0;
const server = new grpc.Server();
server.addService(shop.Catalog.service, {
  GetItem: (call, cb) => { calls++; cb(null, {id: call.request.id, name: 'Blue teapot', price: 24}); },
  WatchPrices: (call) => { call.end(); }, AddToCart: (call, cb) => cb(null, {}), Chat: (call) => call.end(),
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  console.log(port);
  setInterval(() => console.error('calls ' + calls), 1000);
});
setTimeout(() => process.exit(0), Number(process.argv[3]) * 1000);
