"""grpcio (the Google C-core, through Python) as an interop peer for grpc-h3.

    grpcio_peer.py client --target HOST:PORT [--ca PEM_FILE] [--server-name NAME]
        Runs the interop cases against a grpc-h3 server over HTTP/2 (TLS when
        --ca is given, plaintext otherwise). Prints one line per case and
        exits non-zero if any failed.

    grpcio_peer.py standard --target HOST:PORT [--ca PEM_FILE] [--server-name NAME]
        Asks a server's health and reflection services with grpcio's own
        clients (grpcio-health-checking, grpcio-reflection): health of
        grpc.testing.TestService, the service list, and TestService's
        methods resolved through reflection with their imports.

    grpcio_peer.py server [--tls-cert PEM --tls-key PEM]
        Serves grpc.testing.TestService, health and reflection (v1alpha and
        v1) on 127.0.0.1: a plaintext port and,
        with a certificate, a TLS port. Prints "ports PLAIN TLS" (0 for none)
        once listening, then serves until stdin closes.

The caller (the Rust test) generates the stubs with grpc_tools.protoc into
the directory named by GRPC_H3_STUBS.
"""

import argparse
import os
import sys
import threading
import time

import grpc

# The generated grpc/testing stubs live in GRPC_H3_STUBS; grpcio owns the
# `grpc` package, so its search path is extended to find them.
grpc.__path__.append(os.path.join(os.environ["GRPC_H3_STUBS"], "grpc"))
# test_pb2 puts the service descriptors in the default pool, for reflection.
from grpc.testing import empty_pb2, messages_pb2, test_pb2, test_pb2_grpc  # noqa: E402,F401

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING_BIN = "x-grpc-test-echo-trailing-bin"


def zeros(size):
    return messages_pb2.Payload(body=b"\0" * size)


# --- server -----------------------------------------------------------------


class TestService(test_pb2_grpc.TestServiceServicer):
    def _echo_metadata(self, context):
        metadata = dict(context.invocation_metadata())
        if ECHO_INITIAL in metadata:
            context.send_initial_metadata(((ECHO_INITIAL, metadata[ECHO_INITIAL]),))
        if ECHO_TRAILING_BIN in metadata:
            context.set_trailing_metadata(((ECHO_TRAILING_BIN, metadata[ECHO_TRAILING_BIN]),))

    def _status(self, status, context):
        if status is not None and status.code != 0:
            context.abort(grpc.StatusCode(_CODES[status.code]), status.message)

    def EmptyCall(self, request, context):
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        self._echo_metadata(context)
        if request.HasField("response_status"):
            self._status(request.response_status, context)
        return messages_pb2.SimpleResponse(payload=zeros(request.response_size))

    def StreamingOutputCall(self, request, context):
        for params in request.response_parameters:
            if params.interval_us:
                time.sleep(params.interval_us / 1e6)
            yield messages_pb2.StreamingOutputCallResponse(payload=zeros(params.size))
        if request.HasField("response_status"):
            self._status(request.response_status, context)

    def StreamingInputCall(self, request_iterator, context):
        total = sum(len(r.payload.body) for r in request_iterator)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        self._echo_metadata(context)
        for request in request_iterator:
            if request.HasField("response_status"):
                self._status(request.response_status, context)
            for params in request.response_parameters:
                if params.interval_us:
                    time.sleep(params.interval_us / 1e6)
                yield messages_pb2.StreamingOutputCallResponse(payload=zeros(params.size))

    def HalfDuplexCall(self, request_iterator, context):
        requests = list(request_iterator)
        for request in requests:
            for params in request.response_parameters:
                yield messages_pb2.StreamingOutputCallResponse(payload=zeros(params.size))


_CODES = {code.value[0]: code.value for code in grpc.StatusCode}


def serve(args):
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    server = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(max_workers=32))
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("grpc.testing.TestService", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        ["grpc.testing.TestService", "grpc.health.v1.Health", reflection.SERVICE_NAME], server
    )
    plain = server.add_insecure_port("127.0.0.1:0")
    tls = 0
    if args.tls_cert:
        with open(args.tls_cert, "rb") as f:
            cert = f.read()
        with open(args.tls_key, "rb") as f:
            key = f.read()
        tls = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    server.start()
    print(f"ports {plain} {tls}", flush=True)
    sys.stdin.read()
    server.stop(grace=1).wait()


# --- client -----------------------------------------------------------------


class Failed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failed(what)


def expect_code(call, code, message=None):
    try:
        call()
    except grpc.RpcError as e:
        check(e.code() == code, f"expected {code}, got {e.code()}: {e.details()}")
        if message is not None:
            check(e.details() == message, f"expected message {message!r}, got {e.details()!r}")
        return
    raise Failed(f"expected {code}, the call succeeded")


def large_request(**fields):
    return messages_pb2.SimpleRequest(response_size=314159, payload=zeros(271828), **fields)


def output_request(sizes, **fields):
    return messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=s) for s in sizes], **fields
    )


def case_empty_unary(stub, channel):
    check(stub.EmptyCall(empty_pb2.Empty()) == empty_pb2.Empty(), "reply is not empty")


def case_large_unary(stub, channel):
    reply = stub.UnaryCall(large_request())
    check(reply.payload.body == b"\0" * 314159, f"payload of {len(reply.payload.body)} bytes")


def case_client_compressed_unary(stub, channel):
    # grpcio compresses the whole call; the request says it expects that.
    request = large_request(expect_compressed=messages_pb2.BoolValue(value=True))
    reply = stub.UnaryCall(request, compression=grpc.Compression.Gzip)
    check(len(reply.payload.body) == 314159, "bad payload size")
    plain = large_request(expect_compressed=messages_pb2.BoolValue(value=False))
    stub.UnaryCall(plain, compression=grpc.Compression.NoCompression)


def case_server_compressed_unary(stub, channel):
    for compressed in (True, False):
        request = large_request(response_compressed=messages_pb2.BoolValue(value=compressed))
        reply = stub.UnaryCall(request)
        check(len(reply.payload.body) == 314159, "bad payload size")


def case_client_streaming(stub, channel):
    sizes = [27182, 8, 1828, 45904]
    requests = (messages_pb2.StreamingInputCallRequest(payload=zeros(s)) for s in sizes)
    reply = stub.StreamingInputCall(requests)
    check(reply.aggregated_payload_size == 74922, f"aggregated {reply.aggregated_payload_size}")


def case_server_streaming(stub, channel):
    sizes = [31415, 9, 2653, 58979]
    got = [len(r.payload.body) for r in stub.StreamingOutputCall(output_request(sizes))]
    check(got == sizes, f"sizes {got}")


def case_ping_pong(stub, channel):
    sizes = [31415, 9, 2653, 58979]
    inputs = [27182, 8, 1828, 45904]
    pending = []
    cv = threading.Condition()

    def requests():
        for size, payload in zip(sizes, inputs):
            with cv:
                pending.append(size)
                cv.notify_all()
            yield output_request([size], payload=zeros(payload))
            with cv:
                cv.wait_for(lambda: not pending, timeout=30)

    for expected, reply in zip(sizes, stub.FullDuplexCall(requests())):
        check(len(reply.payload.body) == expected, f"reply of {len(reply.payload.body)}")
        with cv:
            pending.clear()
            cv.notify_all()


def case_empty_stream(stub, channel):
    replies = list(stub.FullDuplexCall(iter(())))
    check(replies == [], f"{len(replies)} replies")


def case_custom_metadata(stub, channel):
    metadata = ((ECHO_INITIAL, "test_initial_metadata_value"), (ECHO_TRAILING_BIN, b"\xab\xab\xab"))
    reply, call = stub.UnaryCall.with_call(large_request(), metadata=metadata)
    initial = dict(call.initial_metadata())
    trailing = dict(call.trailing_metadata())
    check(initial.get(ECHO_INITIAL) == "test_initial_metadata_value", f"initial {initial}")
    check(trailing.get(ECHO_TRAILING_BIN) == b"\xab\xab\xab", f"trailing {trailing}")
    replies = stub.FullDuplexCall(iter([output_request([314159], payload=zeros(271828))]), metadata=metadata)
    for _ in replies:
        pass
    check(dict(replies.initial_metadata()).get(ECHO_INITIAL) == "test_initial_metadata_value", "stream initial")
    check(dict(replies.trailing_metadata()).get(ECHO_TRAILING_BIN) == b"\xab\xab\xab", "stream trailing")


def status_case(message):
    def run(stub, channel):
        status = messages_pb2.EchoStatus(code=2, message=message)
        expect_code(lambda: stub.UnaryCall(messages_pb2.SimpleRequest(response_status=status)),
                    grpc.StatusCode.UNKNOWN, message)
        expect_code(lambda: list(stub.FullDuplexCall(iter([messages_pb2.StreamingOutputCallRequest(response_status=status)]))),
                    grpc.StatusCode.UNKNOWN, message)
    return run


def case_unimplemented_method(stub, channel):
    expect_code(lambda: stub.UnimplementedMethod(empty_pb2.Empty()), grpc.StatusCode.UNIMPLEMENTED)


def case_unimplemented_service(stub, channel):
    method = channel.unary_unary(
        "/grpc.testing.UnimplementedService/UnimplementedCall",
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=empty_pb2.Empty.FromString,
    )
    expect_code(lambda: method(empty_pb2.Empty()), grpc.StatusCode.UNIMPLEMENTED)


def case_cancel_after_begin(stub, channel):
    gate = threading.Event()

    def requests():
        gate.wait(30)
        return
        yield

    future = stub.StreamingInputCall.future(requests())
    future.cancel()
    gate.set()
    check(future.cancelled(), "not cancelled")


def case_cancel_after_first_response(stub, channel):
    gate = threading.Event()

    def requests():
        yield output_request([31415], payload=zeros(27182))
        gate.wait(30)

    replies = stub.FullDuplexCall(requests())
    next(replies)
    replies.cancel()
    gate.set()
    check(replies.code() == grpc.StatusCode.CANCELLED, f"code {replies.code()}")


def case_timeout_on_sleeping_server(stub, channel):
    gate = threading.Event()

    def requests():
        yield output_request([31415], payload=zeros(27182))
        gate.wait(30)

    def run():
        for _ in stub.FullDuplexCall(requests(), timeout=0.2):
            pass

    try:
        expect_code(run, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        gate.set()


CASES = {
    "empty_unary": case_empty_unary,
    "large_unary": case_large_unary,
    "client_compressed_unary": case_client_compressed_unary,
    "server_compressed_unary": case_server_compressed_unary,
    "client_streaming": case_client_streaming,
    "server_streaming": case_server_streaming,
    "ping_pong": case_ping_pong,
    "empty_stream": case_empty_stream,
    "custom_metadata": case_custom_metadata,
    "status_code_and_message": status_case("test status message"),
    "special_status_message": status_case("\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"),
    "unimplemented_method": case_unimplemented_method,
    "unimplemented_service": case_unimplemented_service,
    "cancel_after_begin": case_cancel_after_begin,
    "cancel_after_first_response": case_cancel_after_first_response,
    "timeout_on_sleeping_server": case_timeout_on_sleeping_server,
}


def open_channel(args):
    if args.ca:
        with open(args.ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
        channel = grpc.secure_channel(args.target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(args.target)
    grpc.channel_ready_future(channel).result(timeout=20)
    return channel


def run_standard(args):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    channel = open_channel(args)
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="grpc.testing.TestService"), timeout=10)
    check(reply.status == health_pb2.HealthCheckResponse.SERVING, f"health status {reply.status}")
    print("PASS health_check", flush=True)
    try:
        health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=10)
        raise Failed("health of an unknown service succeeded")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, f"unknown service: {e.code()}")
    print("PASS health_unknown", flush=True)

    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    check("grpc.testing.TestService" in services, f"services {sorted(services)}")
    check("grpc.health.v1.Health" in services, f"services {sorted(services)}")
    print("PASS reflection_list", flush=True)
    pool = DescriptorPool(database)
    service = pool.FindServiceByName("grpc.testing.TestService")
    methods = sorted(m.name for m in service.methods)
    check("UnaryCall" in methods and "FullDuplexCall" in methods, f"methods {methods}")
    unary = service.methods_by_name["UnaryCall"]
    check(unary.input_type.full_name == "grpc.testing.SimpleRequest", unary.input_type.full_name)
    check("payload" in unary.input_type.fields_by_name, "SimpleRequest.payload")
    print("PASS reflection_resolve", flush=True)
    try:
        pool.FindMessageTypeByName("no.such.Message")
        raise Failed("reflection found a message that does not exist")
    except KeyError:
        pass
    print("PASS reflection_unknown", flush=True)
    channel.close()


def run_client(args):
    channel = open_channel(args)
    stub = test_pb2_grpc.TestServiceStub(channel)
    failures = 0
    for name, case in CASES.items():
        try:
            case(stub, channel)
            print(f"PASS {name}", flush=True)
        except Exception as e:  # a failed check or an unexpected RPC error
            failures += 1
            print(f"FAIL {name}: {e!r}", flush=True)
    channel.close()
    sys.exit(1 if failures else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="role", required=True)
    client = sub.add_parser("client")
    client.add_argument("--target", required=True)
    client.add_argument("--ca")
    client.add_argument("--server-name")
    standard = sub.add_parser("standard")
    standard.add_argument("--target", required=True)
    standard.add_argument("--ca")
    standard.add_argument("--server-name")
    server = sub.add_parser("server")
    server.add_argument("--tls-cert")
    server.add_argument("--tls-key")
    args = parser.parse_args()
    if args.role == "client":
        run_client(args)
    elif args.role == "standard":
        try:
            run_standard(args)
        except Failed as e:
            print(f"FAIL {e}", flush=True)
            sys.exit(1)
    else:
        serve(args)


if __name__ == "__main__":
    main()
