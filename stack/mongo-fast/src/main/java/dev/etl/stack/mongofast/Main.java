package dev.etl.stack.mongofast;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * mongo-fast: mongo-java-server 1.47.0 with its in-memory backend, as the local
 * stack's second, fast MongoDB-protocol server. All data is lost when it exits.
 *
 * <pre>
 *   java -jar mongo-fast.jar --host 127.0.0.1 --port 27018 [--oplog on|off]
 *   java -jar mongo-fast.jar --ping 127.0.0.1:27018 [--timeout SECONDS]   exit 0 (ok) or 1
 * </pre>
 */
public final class Main {

    /**
     * Reports MongoDB 5.0 with the given wire version: 13, the real 5.0 one, by default.
     *
     * <p>Why not {@code ServerVersion.MONGO_5_0}: mongo-java-server reports wire
     * version 8 (MongoDB 4.2) even for MONGO_5_0, and the Rust {@code mongodb}
     * crate 3.x and pymongo 4.x refuse any server below wire version 9 ("requires
     * at least 9"). Reporting 13 lets both drivers connect; find, getMore, count,
     * aggregate and insert then work from both, and change streams from the Rust
     * driver (pymongo's watch() still fails: no operationTime in replies).
     */
    static MongoVersion mongo50(int wireVersion) {
        return new MongoVersion() {
            @Override
            public List<Integer> getVersionArray() {
                return List.of(5, 0, 0);
            }

            @Override
            public int getWireVersion() {
                return wireVersion;
            }
        };
    }

    private static final int OP_MSG = 2013;

    public static void main(String[] args) {
        String host = "127.0.0.1";
        int port = 27018;
        boolean oplog = true;
        // 13 is MongoDB 5.0's. Tests pass the server's own 8 to see how a
        // client meets a server it must refuse.
        int wireVersion = 13;
        String ping = null;
        int timeoutSeconds = 3;
        try {
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                switch (a) {
                    case "--host" -> host = value(args, ++i, a);
                    case "--port" -> port = Integer.parseInt(value(args, ++i, a));
                    case "--oplog" -> {
                        String v = value(args, ++i, a);
                        if (!v.equals("on") && !v.equals("off")) {
                            throw new IllegalArgumentException("--oplog takes on or off, not '" + v + "'");
                        }
                        oplog = v.equals("on");
                    }
                    case "--wire-version" -> wireVersion = Integer.parseInt(value(args, ++i, a));
                    case "--ping" -> ping = value(args, ++i, a);
                    case "--timeout" -> timeoutSeconds = Integer.parseInt(value(args, ++i, a));
                    case "-h", "--help" -> {
                        usage();
                        return;
                    }
                    default -> throw new IllegalArgumentException("unknown argument '" + a + "'");
                }
            }
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("--port must be 1..65535");
            }
        } catch (IllegalArgumentException e) {
            System.err.println("mongo-fast: " + e.getMessage());
            usage();
            System.exit(2);
            return;
        }

        if (ping != null) {
            try {
                doPing(ping, timeoutSeconds * 1000);
                System.out.println("ok");
                System.exit(0);
            } catch (Exception e) {
                System.err.println("ping " + ping + ": " + e);
                System.exit(1);
            }
            return;
        }

        try {
            if (!InetAddress.getByName(host).isLoopbackAddress()) {
                System.err.println("mongo-fast: refusing to bind to " + host + ": only loopback addresses (127.0.0.1, ::1) are allowed");
                System.exit(2);
            }
        } catch (IOException e) {
            System.err.println("mongo-fast: bad --host " + host + ": " + e);
            System.exit(2);
        }

        MongoServer server = new MongoServer(new MemoryBackend().version(mongo50(wireVersion)));
        if (oplog) {
            // Needed for change streams. With a million documents the oplog
            // keeps the heap full and the server stalls in GC, so bulk
            // benchmarks run with --oplog off.
            server.enableOplog();
        }
        try {
            server.bind(host, port);
        } catch (Exception e) { // netty rethrows BindException unchecked-style
            System.err.println("mongo-fast: cannot listen on " + host + ":" + port + ": " + e);
            System.exit(1); // netty's threads would keep the JVM alive
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            System.err.println("mongo-fast stopped");
            stopped.countDown();
        }, "mongo-fast-shutdown"));
        System.err.println("mongo-fast (mongo-java-server 1.47.0, memory backend) listening on "
                + host + ":" + port + ", oplog " + (oplog ? "on" : "off"));
        try {
            stopped.await(); // until SIGTERM/SIGINT runs the hook
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String value(String[] args, int i, String flag) {
        if (i >= args.length) {
            throw new IllegalArgumentException(flag + " needs a value");
        }
        return args[i];
    }

    private static void usage() {
        System.err.println("usage: mongo-fast --host 127.0.0.1 --port 27018 [--oplog on|off] [--wire-version 13]\n"
                + "       mongo-fast --ping HOST:PORT [--timeout SECONDS]   exit 0 if {ping: 1} answers ok, else 1");
    }

    // ------------------------------------------------------------------ ping

    /** Sends {ping: 1, $db: "admin"} as an OP_MSG and throws unless the reply has ok: 1. */
    static void doPing(String addr, int timeoutMillis) throws IOException {
        int colon = addr.lastIndexOf(':');
        if (colon <= 0) {
            throw new IOException("address must be HOST:PORT");
        }
        String host = addr.substring(0, colon).replaceAll("^\\[|\\]$", "");
        int port = Integer.parseInt(addr.substring(colon + 1));

        // BSON {ping: 1 (int32), $db: "admin"}
        ByteBuffer doc = le(64);
        doc.putInt(0);
        doc.put((byte) 0x10).put(cstring("ping")).putInt(1);
        byte[] db = cstring("admin");
        doc.put((byte) 0x02).put(cstring("$db")).putInt(db.length).put(db);
        doc.put((byte) 0);
        doc.putInt(0, doc.position());

        int requestId = 1;
        int length = 16 + 4 + 1 + doc.position();
        ByteBuffer msg = le(length);
        msg.putInt(length).putInt(requestId).putInt(0).putInt(OP_MSG);
        msg.putInt(0); // flagBits
        msg.put((byte) 0); // section kind 0: body
        msg.put(doc.array(), 0, doc.position());

        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(host, port), timeoutMillis);
            s.setSoTimeout(timeoutMillis);
            OutputStream out = s.getOutputStream();
            out.write(msg.array());
            out.flush();

            DataInputStream in = new DataInputStream(s.getInputStream());
            byte[] head = new byte[16];
            in.readFully(head);
            ByteBuffer h = ByteBuffer.wrap(head).order(ByteOrder.LITTLE_ENDIAN);
            int replyLength = h.getInt();
            h.getInt(); // its requestID
            int responseTo = h.getInt();
            int opCode = h.getInt();
            if (opCode != OP_MSG || responseTo != requestId || replyLength < 21 || replyLength > 16 << 20) {
                throw new IOException("unexpected reply: opCode " + opCode + ", responseTo " + responseTo + ", length " + replyLength);
            }
            byte[] body = new byte[replyLength - 16];
            in.readFully(body);
            ByteBuffer b = ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN);
            b.getInt(); // flagBits
            if (b.get() != 0) {
                throw new IOException("reply does not start with a body section");
            }
            double ok = okField(b);
            if (ok != 1.0) {
                throw new IOException("reply has ok: " + ok);
            }
        }
    }

    /** Reads the top-level "ok" field of the BSON document at b's position. */
    private static double okField(ByteBuffer b) throws IOException {
        int start = b.position();
        int end = start + b.getInt() - 1;
        while (b.position() < end) {
            byte type = b.get();
            String name = readCstring(b);
            boolean isOk = name.equals("ok");
            switch (type) {
                case 0x01 -> { double v = b.getDouble(); if (isOk) return v; }
                case 0x10 -> { int v = b.getInt(); if (isOk) return v; }
                case 0x12 -> { long v = b.getLong(); if (isOk) return v; }
                case 0x08 -> { byte v = b.get(); if (isOk) return v; }
                case 0x02, 0x0D, 0x0E -> skip(b, b.getInt());       // string, code, symbol
                case 0x03, 0x04 -> skip(b, b.getInt() - 4);        // document, array
                case 0x05 -> skip(b, b.getInt() + 1);              // binary
                case 0x07 -> skip(b, 12);                          // ObjectId
                case 0x09, 0x11 -> skip(b, 8);                     // date, timestamp
                case 0x13 -> skip(b, 16);                          // decimal128
                case 0x0A, 0x7F, (byte) 0xFF -> { }                // null, max/min key
                default -> throw new IOException("unsupported BSON type 0x" + Integer.toHexString(type & 0xff) + " in reply");
            }
        }
        throw new IOException("reply has no ok field");
    }

    private static void skip(ByteBuffer b, int n) {
        b.position(b.position() + n);
    }

    private static String readCstring(ByteBuffer b) {
        int from = b.position();
        while (b.get() != 0) { /* to the terminating NUL */ }
        return new String(b.array(), from, b.position() - from - 1, StandardCharsets.UTF_8);
    }

    private static byte[] cstring(String s) {
        byte[] raw = s.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[raw.length + 1];
        System.arraycopy(raw, 0, out, 0, raw.length);
        return out;
    }

    private static ByteBuffer le(int n) {
        return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }
}
