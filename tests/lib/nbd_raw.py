"""A minimal NBD client that speaks raw bytes, for the bad-input integration tests.

Run with Debian's /usr/bin/python3 (tests/lib/common.sh: raw_py). It does the fixed-newstyle
handshake step by step (so a test can send any option, valid or not), then lets a test send
arbitrary transmission requests and parse simple replies and structured reply chunks.
Everything is checked strictly: a wrong magic, a wrong handle or a short read raises
ProtocolError; every socket operation has a timeout, so nothing waits forever.

Constants follow doc/proto.md of NetworkBlockDevice/nbd.
"""

import os
import socket
import struct
import sys

# --- constants --------------------------------------------------------------------------------

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF

FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2
FLAG_C_FIXED_NEWSTYLE = 1
FLAG_C_NO_ZEROES = 2

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_META_CONTEXT = 4
REP_ERR_UNSUP = 2**31 + 1
REP_ERR_POLICY = 2**31 + 2
REP_ERR_INVALID = 2**31 + 3
REP_ERR_PLATFORM = 2**31 + 4
REP_ERR_TLS_REQD = 2**31 + 5
REP_ERR_UNKNOWN = 2**31 + 6
REP_ERR_SHUTDOWN = 2**31 + 7
REP_ERR_BLOCK_SIZE_REQD = 2**31 + 8
REP_ERR_TOO_BIG = 2**31 + 9

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

TF_HAS_FLAGS = 0x1
TF_READ_ONLY = 0x2
TF_SEND_FLUSH = 0x4
TF_SEND_FUA = 0x8
TF_ROTATIONAL = 0x10
TF_SEND_TRIM = 0x20
TF_SEND_WRITE_ZEROES = 0x40
TF_SEND_DF = 0x80
TF_CAN_MULTI_CONN = 0x100
TF_SEND_CACHE = 0x400
TF_SEND_FAST_ZERO = 0x800

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 0x1
CMD_FLAG_NO_HOLE = 0x2
CMD_FLAG_DF = 0x4
CMD_FLAG_REQ_ONE = 0x8
CMD_FLAG_FAST_ZERO = 0x10

REPLY_FLAG_DONE = 1
REPLY_TYPE_NONE = 0
REPLY_TYPE_OFFSET_DATA = 1
REPLY_TYPE_OFFSET_HOLE = 2
REPLY_TYPE_BLOCK_STATUS = 5
REPLY_TYPE_ERROR = 2**15 + 1
REPLY_TYPE_ERROR_OFFSET = 2**15 + 2

EPERM = 1
EIO = 5
ENOMEM = 12
EINVAL = 22
ENOSPC = 28
EOVERFLOW = 75
ENOTSUP = 95
ESHUTDOWN = 108

MAX_REQUEST = 32 * 1024 * 1024

REP_NAMES = {
    REP_ACK: "ACK", REP_SERVER: "SERVER", REP_INFO: "INFO", REP_META_CONTEXT: "META_CONTEXT",
    REP_ERR_UNSUP: "ERR_UNSUP", REP_ERR_POLICY: "ERR_POLICY", REP_ERR_INVALID: "ERR_INVALID",
    REP_ERR_PLATFORM: "ERR_PLATFORM", REP_ERR_TLS_REQD: "ERR_TLS_REQD",
    REP_ERR_UNKNOWN: "ERR_UNKNOWN", REP_ERR_SHUTDOWN: "ERR_SHUTDOWN",
    REP_ERR_BLOCK_SIZE_REQD: "ERR_BLOCK_SIZE_REQD", REP_ERR_TOO_BIG: "ERR_TOO_BIG",
}


def rep_name(t):
    return REP_NAMES.get(t, "0x%x" % t)


class ProtocolError(Exception):
    """The server sent something the spec does not allow, or closed early."""


class TestFailure(Exception):
    """An assertion of a test failed."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


# --- replies ----------------------------------------------------------------------------------

class OptReply:
    def __init__(self, opt, rtype, data):
        self.opt, self.type, self.data = opt, rtype, data

    def is_error(self):
        return self.type >= 2**31

    def __repr__(self):
        return "OptReply(opt=%d, %s, %d bytes%s)" % (
            self.opt, rep_name(self.type), len(self.data),
            (", %r" % self.data[:80]) if self.is_error() else "")


class Chunk:
    def __init__(self, flags, ctype, cookie, payload):
        self.flags, self.type, self.cookie, self.payload = flags, ctype, cookie, payload

    def done(self):
        return bool(self.flags & REPLY_FLAG_DONE)

    def error(self):
        """(errno, message) of an error chunk; checks the chunk's internal lengths."""
        check(self.type in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET),
              "chunk type %d is not an error chunk" % self.type)
        check(len(self.payload) >= 6, "error chunk payload %d < 6 bytes" % len(self.payload))
        err, mlen = struct.unpack(">IH", self.payload[:6])
        extra = 8 if self.type == REPLY_TYPE_ERROR_OFFSET else 0
        check(len(self.payload) == 6 + mlen + extra,
              "error chunk payload is %d bytes but message length %d (+%d) says %d"
              % (len(self.payload), mlen, extra, 6 + mlen + extra))
        return err, self.payload[6:6 + mlen].decode("utf-8", "replace")

    def __repr__(self):
        return "Chunk(flags=%d, type=%d, cookie=%d, %d bytes)" % (
            self.flags, self.type, self.cookie, len(self.payload))


class Reply:
    """A whole reply to one request: a simple reply, or all chunks up to the DONE one."""

    def __init__(self, cookie, simple, error, data=b"", chunks=None, message=""):
        self.cookie, self.simple, self.error = cookie, simple, error
        self.data, self.chunks, self.message = data, chunks or [], message

    def __repr__(self):
        kind = "simple" if self.simple else "structured(%s)" % ", ".join(
            "type %d" % c.type for c in self.chunks)
        return "Reply(cookie=%d, %s, error=%d%s, %d data bytes)" % (
            self.cookie, kind, self.error,
            (", message=%r" % self.message) if self.message else "", len(self.data))


# --- the client -------------------------------------------------------------------------------

class Client:
    def __init__(self, sock_path=None, tcp=None, timeout=10.0):
        if tcp:
            self.s = socket.create_connection(tcp, timeout=timeout)
        else:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(sock_path or os.environ["SOCK"])
        self.structured = False
        self.size = None
        self.tflags = None
        self.no_zeroes = False
        self.pending = {}     # cookie -> (cmd, offset, length)
        self.next_cookie = 1
        self.contexts = {}    # id -> name

    # low level
    def send(self, data):
        self.s.sendall(data)

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                part = self.s.recv(min(n - len(buf), 1 << 20))
            except socket.timeout:
                raise ProtocolError("timed out waiting for %d bytes (got %d)" % (n, len(buf)))
            except ConnectionResetError:
                part = b""
            if not part:
                raise ProtocolError("connection closed after %d of %d bytes" % (len(buf), n))
            buf += part
        return bytes(buf)

    def is_closed(self, timeout=5.0):
        """True if the server closes the connection (EOF or reset) within timeout with no
        further bytes. Raises ProtocolError if it sends data instead."""
        old = self.s.gettimeout()
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(4096)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            self.s.settimeout(old)
        if data:
            raise ProtocolError("expected the connection to close, got %d bytes: %r"
                                % (len(data), data[:64]))
        return True

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    # handshake
    def greeting(self, client_flags=FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES):
        magic, ihaveopt, hflags = struct.unpack(">QQH", self.recv_exact(18))
        if magic != NBDMAGIC or ihaveopt != IHAVEOPT:
            raise ProtocolError("bad greeting magic %x %x" % (magic, ihaveopt))
        if not hflags & FLAG_FIXED_NEWSTYLE:
            raise ProtocolError("server does not offer FIXED_NEWSTYLE (flags %d)" % hflags)
        self.hflags = hflags
        if client_flags is not None:
            self.send(struct.pack(">I", client_flags))
            self.no_zeroes = bool(client_flags & FLAG_C_NO_ZEROES and hflags & FLAG_NO_ZEROES)
        return hflags

    def send_option(self, opt, data=b"", length=None):
        """Send option opt with data; length overrides the length field (to lie)."""
        self.send(struct.pack(">QII", IHAVEOPT, opt, len(data) if length is None else length)
                  + data)

    def recv_opt_reply(self, expect_opt=None):
        magic, opt, rtype, length = struct.unpack(">QIII", self.recv_exact(20))
        if magic != OPT_REPLY_MAGIC:
            raise ProtocolError("bad option reply magic 0x%x" % magic)
        if expect_opt is not None and opt != expect_opt:
            raise ProtocolError("option reply names option %d, expected %d" % (opt, expect_opt))
        data = self.recv_exact(length) if length else b""
        return OptReply(opt, rtype, data)

    def option(self, opt, data=b"", length=None):
        """Send one option and collect its replies up to the final one (ACK or an error)."""
        self.send_option(opt, data, length)
        replies = []
        while True:
            r = self.recv_opt_reply(opt)
            replies.append(r)
            if r.type == REP_ACK or r.is_error():
                return replies
            if len(replies) > 10000:
                raise ProtocolError("more than 10000 replies to one option")

    @staticmethod
    def info_data(name, infos=()):
        n = name.encode()
        return struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos)) + b"".join(
            struct.pack(">H", i) for i in infos)

    @staticmethod
    def meta_data(name, queries):
        n = name.encode()
        out = struct.pack(">I", len(n)) + n + struct.pack(">I", len(queries))
        for q in queries:
            qb = q.encode()
            out += struct.pack(">I", len(qb)) + qb
        return out

    def structured_reply(self):
        r = self.option(OPT_STRUCTURED_REPLY)
        check(len(r) == 1 and r[0].type == REP_ACK, "STRUCTURED_REPLY: %r" % r)
        self.structured = True

    def set_meta_context(self, name, queries=("base:allocation",)):
        r = self.option(OPT_SET_META_CONTEXT, self.meta_data(name, list(queries)))
        check(r[-1].type == REP_ACK, "SET_META_CONTEXT: %r" % r)
        for rep in r[:-1]:
            check(rep.type == REP_META_CONTEXT, "SET_META_CONTEXT reply %r" % rep)
            cid = struct.unpack(">I", rep.data[:4])[0]
            self.contexts[cid] = rep.data[4:].decode()
        return r

    @staticmethod
    def parse_info(replies):
        """{info type: payload} from NBD_REP_INFO replies."""
        out = {}
        for r in replies:
            if r.type == REP_INFO:
                check(len(r.data) >= 2, "NBD_REP_INFO with %d bytes" % len(r.data))
                out[struct.unpack(">H", r.data[:2])[0]] = r.data[2:]
        return out

    def go(self, name, infos=()):
        """NBD_OPT_GO; on success enter transmission. Returns the replies."""
        r = self.option(OPT_GO, self.info_data(name, infos))
        if r[-1].type != REP_ACK:
            raise TestFailure("NBD_OPT_GO %r failed: %r" % (name, r))
        info = self.parse_info(r)
        check(INFO_EXPORT in info, "GO: no NBD_INFO_EXPORT before ACK: %r" % r)
        check(len(info[INFO_EXPORT]) == 10,
              "NBD_INFO_EXPORT payload %d bytes, expected 10" % len(info[INFO_EXPORT]))
        self.size, self.tflags = struct.unpack(">QH", info[INFO_EXPORT])
        return r

    def export_name(self, name):
        """NBD_OPT_EXPORT_NAME: enter transmission, or ProtocolError if the server closes."""
        self.send_option(OPT_EXPORT_NAME, name.encode())
        self.size, self.tflags = struct.unpack(">QH", self.recv_exact(10))
        if not self.no_zeroes:
            self.recv_exact(124)

    # transmission
    def send_request(self, cmd, offset=0, length=0, flags=0, payload=b"", cookie=None,
                     magic=REQUEST_MAGIC, expect_reply=True):
        if cookie is None:
            cookie = self.next_cookie
            self.next_cookie += 1
        self.send(struct.pack(">IHHQQI", magic, flags, cmd, cookie, offset, length) + payload)
        if expect_reply:
            self.pending[cookie] = (cmd, offset, length)
        return cookie

    def recv_reply(self):
        """Read the next complete reply (any pending cookie). For READs the data is assembled
        from the chunks (holes as zeroes); for BLOCK_STATUS the chunks are kept."""
        got = {}
        while True:
            magic = struct.unpack(">I", self.recv_exact(4))[0]
            if magic == SIMPLE_REPLY_MAGIC:
                err, cookie = struct.unpack(">IQ", self.recv_exact(12))
                if cookie not in self.pending:
                    raise ProtocolError("simple reply for unknown cookie %d" % cookie)
                if cookie in got:
                    raise ProtocolError("simple reply for cookie %d after its chunks" % cookie)
                cmd, off, length = self.pending.pop(cookie)
                if self.structured and cmd == CMD_READ:
                    raise ProtocolError("simple reply (error %d) to READ cookie %d although "
                                        "structured replies were negotiated" % (err, cookie))
                data = b""
                if cmd == CMD_READ and err == 0:
                    data = self.recv_exact(length)
                return Reply(cookie, True, err, data)
            if magic != STRUCTURED_REPLY_MAGIC:
                raise ProtocolError("bad reply magic 0x%08x" % magic)
            if not self.structured:
                raise ProtocolError("structured chunk without structured replies negotiated")
            flags, ctype, cookie, length = struct.unpack(">HHQI", self.recv_exact(16))
            payload = self.recv_exact(length) if length else b""
            if cookie not in self.pending:
                raise ProtocolError("chunk type %d for unknown cookie %d" % (ctype, cookie))
            chunk = Chunk(flags, ctype, cookie, payload)
            got.setdefault(cookie, []).append(chunk)
            if chunk.done():
                return self._assemble(cookie, got.pop(cookie))

    def _assemble(self, cookie, chunks):
        cmd, off, length = self.pending.pop(cookie)
        err, msg = 0, ""
        # allocate the read buffer only for a successful read (an error reply to a huge
        # READ must not make the client allocate gigabytes)
        failed = any(c.type in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET) for c in chunks)
        data = bytearray(length) if cmd == CMD_READ and not failed else bytearray()
        covered = 0
        for c in chunks:
            if c.type in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET):
                e, m = c.error()
                check(e != 0, "error chunk with error 0")
                if not err:
                    err, msg = e, m
            elif c.type == REPLY_TYPE_NONE:
                check(len(c.payload) == 0, "NONE chunk with payload")
                check(c.done(), "NONE chunk without DONE flag")
            elif c.type == REPLY_TYPE_OFFSET_DATA:
                check(cmd == CMD_READ, "OFFSET_DATA chunk for command %d" % cmd)
                o = struct.unpack(">Q", c.payload[:8])[0]
                d = c.payload[8:]
                check(off <= o and o + len(d) <= off + length,
                      "OFFSET_DATA [%d,+%d) outside request [%d,+%d)" % (o, len(d), off, length))
                if not failed:
                    data[o - off:o - off + len(d)] = d
                covered += len(d)
            elif c.type == REPLY_TYPE_OFFSET_HOLE:
                check(cmd == CMD_READ, "OFFSET_HOLE chunk for command %d" % cmd)
                o, hl = struct.unpack(">QI", c.payload)
                check(off <= o and o + hl <= off + length, "OFFSET_HOLE outside request")
                covered += hl
            elif c.type == REPLY_TYPE_BLOCK_STATUS:
                check(cmd == CMD_BLOCK_STATUS, "BLOCK_STATUS chunk for command %d" % cmd)
            else:
                raise ProtocolError("unknown chunk type %d" % c.type)
        if cmd == CMD_READ and not err:
            check(covered == length, "READ chunks cover %d of %d bytes" % (covered, length))
        return Reply(cookie, False, err, bytes(data), chunks, msg)

    def request(self, cmd, offset=0, length=0, flags=0, payload=b""):
        """Send one request and wait for its reply (no other request may be pending)."""
        check(not self.pending, "request() with replies pending")
        c = self.send_request(cmd, offset, length, flags, payload)
        r = self.recv_reply()
        if r.cookie != c:
            raise ProtocolError("reply for cookie %d, expected %d" % (r.cookie, c))
        return r

    def read(self, offset, length, flags=0):
        return self.request(CMD_READ, offset, length, flags)

    def write(self, offset, data, flags=0):
        return self.request(CMD_WRITE, offset, len(data), flags, data)

    def disconnect(self):
        self.send_request(CMD_DISC, expect_reply=False)
        self.close()


# --- conveniences for tests -------------------------------------------------------------------

def connect(name="disk", structured=True, meta=True, sock_path=None, tcp=None):
    """A client in transmission on export name via NBD_OPT_GO."""
    c = Client(sock_path, tcp)
    c.greeting()
    if structured:
        c.structured_reply()
        if meta:
            c.set_meta_context(name)
    c.go(name)
    return c


def expect_error(reply, errno, what):
    check(reply.error == errno, "%s: expected error %d, got %r" % (what, errno, reply))


def expect_ok(reply, what):
    check(reply.error == 0, "%s: expected success, got %r" % (what, reply))


def expect_works(c, what, offset=0, length=4096):
    """The connection still serves: a write of a fresh pattern, a read back, compare."""
    pat = os.urandom(length)
    expect_ok(c.write(offset, pat), "%s: write on the same connection" % what)
    r = c.read(offset, length)
    expect_ok(r, "%s: read on the same connection" % what)
    check(r.data == pat, "%s: read back differs from what was written" % what)


def fresh_works(name="disk", what="fresh connection", structured=True):
    c = connect(name, structured=structured)
    expect_works(c, what, offset=8192)
    c.disconnect()


def run(main):
    """Run main(); on any failure print one line with the reason and exit 1."""
    try:
        main()
    except TestFailure as e:
        print(e)
        sys.exit(1)
    except ProtocolError as e:
        print("protocol error: %s" % e)
        sys.exit(1)
    except Exception as e:  # an unexpected exception is a failure too, with its location
        import traceback
        tb = traceback.extract_tb(e.__traceback__)[-1]
        print("%s: %s (at %s:%d)" % (type(e).__name__, e, os.path.basename(tb.filename), tb.lineno))
        sys.exit(1)
