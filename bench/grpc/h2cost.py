"""Client-side CPU of one gRPC unary exchange through the sans-IO h2 library, in memory: the floor of an
h2-based gRPC client in Python (framing and HPACK only: no sockets, no protobuf, no scheduling)."""

import time

import h2.config
import h2.connection
import h2.events

client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
client.initiate_connection()
server.initiate_connection()
server.receive_data(client.data_to_send())
client.receive_data(server.data_to_send())
server.receive_data(client.data_to_send())
REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/shop.Catalog/GetItem"),
    (b":authority", b"127.0.0.1"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
PAYLOAD = b"\x00\x00\x00\x00\x02\x08\x02"
ANSWER = b"\x00\x00\x00\x00\x15\x08\x02\x12\x0bBlue teapot\x19\x00\x00\x00\x00\x00\x008@"
N = 20000
spent = 0.0
for _ in range(N):
    started = time.process_time()
    stream = client.get_next_available_stream_id()
    client.send_headers(stream, REQUEST)
    client.send_data(stream, PAYLOAD, end_stream=True)
    out = client.data_to_send()
    spent += time.process_time() - started
    for event in server.receive_data(out):
        if isinstance(event, h2.events.DataReceived):
            server.acknowledge_received_data(event.flow_controlled_length, stream)
    server.send_headers(stream, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.send_data(stream, ANSWER)
    server.send_headers(stream, [(b"grpc-status", b"0")], end_stream=True)
    back = server.data_to_send()
    started = time.process_time()
    for event in client.receive_data(back):
        if isinstance(event, h2.events.DataReceived):
            client.acknowledge_received_data(event.flow_controlled_length, stream)
    update = client.data_to_send()
    spent += time.process_time() - started
    server.receive_data(update)
print(f"h2 client side: {spent / N * 1e6:.0f} us per unary exchange, at most {N / spent:.0f} calls per CPU-second")
