package io.sluice.format.wds;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes tar archives for tests, headers built by hand: ustar (long names split into prefix/name),
 * GNU (long names in an {@code L} member, {@code "ustar "} magic) and pax (long names in an {@code
 * x} member). Knobs produce the rarer encodings (base-256 sizes, signed checksums, pax sizes).
 */
public final class TarWriter {
  enum Style {
    USTAR,
    GNU,
    PAX
  }

  private final ByteArrayOutputStream out = new ByteArrayOutputStream();
  private Style style = Style.USTAR;
  private boolean base256Size;
  private boolean signedChecksum;
  private boolean paxSize;

  /** Offsets of the headers of the members added by {@link #file}, in order. */
  final List<Long> memberHeaders = new ArrayList<>();

  /** Offsets of the data of the members added by {@link #file}, in order. */
  final List<Long> memberData = new ArrayList<>();

  TarWriter style(Style s) {
    this.style = s;
    return this;
  }

  TarWriter base256Size(boolean on) {
    this.base256Size = on;
    return this;
  }

  TarWriter signedChecksum(boolean on) {
    this.signedChecksum = on;
    return this;
  }

  /** Pax style: also put each member's size in its pax header, with 0 in the ustar field. */
  TarWriter paxSize(boolean on) {
    this.paxSize = on;
    return this;
  }

  long position() {
    return out.size();
  }

  /** Adds a regular file; returns the offset of its own header. */
  public long file(String name, byte[] data) {
    long at = member(name, data.length, (byte) '0', "");
    memberHeaders.add(at);
    memberData.add(at + 512);
    out.writeBytes(data);
    pad();
    return at;
  }

  void dir(String name) {
    member(name.endsWith("/") ? name : name + "/", 0, (byte) '5', "");
  }

  void symlink(String name, String target) {
    member(name, 0, (byte) '2', target);
  }

  /** A pax global header (ignored by readers of samples). */
  void paxGlobal(String records) {
    byte[] data = records.getBytes(StandardCharsets.UTF_8);
    out.writeBytes(header("pax_global_header", data.length, (byte) 'g', Style.PAX, ""));
    out.writeBytes(data);
    pad();
  }

  void raw(byte[] bytes) {
    out.writeBytes(bytes);
  }

  byte[] bytes(boolean endBlocks) {
    ByteArrayOutputStream copy = new ByteArrayOutputStream();
    copy.writeBytes(out.toByteArray());
    if (endBlocks) {
      copy.writeBytes(new byte[1024]);
    }
    return copy.toByteArray();
  }

  public Path writeTo(Path file) throws IOException {
    Files.write(file, bytes(true));
    return file;
  }

  private long member(String name, long size, byte type, String link) {
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    String headerName = name;
    if (n.length > 100) {
      switch (style) {
        case USTAR -> {
          // ustar splits at a slash: prefix (<= 155 bytes) + "/" + name (<= 100 bytes)
          int cut = name.lastIndexOf('/', 155);
          if (cut < 0 || name.length() - cut - 1 > 100) {
            throw new IllegalArgumentException("no ustar split for " + name);
          }
          long at = out.size();
          out.writeBytes(
              header(name.substring(cut + 1), size, type, style, name.substring(0, cut), link));
          return at;
        }
        case GNU -> {
          byte[] d = new byte[n.length + 1];
          System.arraycopy(n, 0, d, 0, n.length);
          out.writeBytes(header("././@LongLink", d.length, (byte) 'L', Style.GNU, ""));
          out.writeBytes(d);
          pad();
          headerName = new String(n, 0, 100, StandardCharsets.ISO_8859_1);
        }
        case PAX -> {
          byte[] d = paxRecord("path", name);
          out.writeBytes(header("PaxHeaders/x", d.length, (byte) 'x', Style.PAX, ""));
          out.writeBytes(d);
          pad();
          headerName = "truncated-by-pax";
        }
      }
    }
    if (paxSize && style == Style.PAX && type == '0') {
      byte[] d = paxRecord("size", Long.toString(size));
      out.writeBytes(header("PaxHeaders/s", d.length, (byte) 'x', Style.PAX, ""));
      out.writeBytes(d);
      pad();
      size = 0;
    }
    long at = out.size();
    out.writeBytes(header(headerName, size, type, style, "", link));
    return at;
  }

  private byte[] header(String name, long size, byte type, Style s, String link) {
    return header(name, size, type, s, "", link);
  }

  private byte[] header(String name, long size, byte type, Style s, String prefix, String link) {
    byte[] h = new byte[512];
    put(h, 0, 100, name.getBytes(StandardCharsets.UTF_8));
    put(h, 100, 8, "0000644\0".getBytes(StandardCharsets.US_ASCII));
    put(h, 108, 8, "0001750\0".getBytes(StandardCharsets.US_ASCII));
    put(h, 116, 8, "0001750\0".getBytes(StandardCharsets.US_ASCII));
    if (base256Size) {
      h[124] = (byte) 0x80;
      for (int i = 0; i < 8; i++) {
        h[135 - i] = (byte) (size >>> (8 * i));
      }
    } else {
      put(h, 124, 12, String.format("%011o\0", size).getBytes(StandardCharsets.US_ASCII));
    }
    put(h, 136, 12, "14707340000\0".getBytes(StandardCharsets.US_ASCII));
    h[156] = type;
    put(h, 157, 100, link.getBytes(StandardCharsets.UTF_8));
    if (s == Style.GNU) {
      put(h, 257, 8, "ustar  \0".getBytes(StandardCharsets.US_ASCII));
    } else {
      put(h, 257, 8, "ustar\u000000".getBytes(StandardCharsets.US_ASCII));
      put(h, 345, 155, prefix.getBytes(StandardCharsets.UTF_8));
    }
    put(h, 265, 32, "user".getBytes(StandardCharsets.US_ASCII));
    put(h, 297, 32, "group".getBytes(StandardCharsets.US_ASCII));
    setChecksum(h, signedChecksum);
    return h;
  }

  /** Writes the checksum field of a 512-byte header at {@code h}. */
  static void setChecksum(byte[] h, boolean signed) {
    for (int i = 148; i < 156; i++) {
      h[i] = ' ';
    }
    long sum = 0;
    for (byte b : h) {
      sum += signed ? b : (b & 0xFF);
    }
    put(h, 148, 8, String.format("%06o\0 ", sum & 0777777).getBytes(StandardCharsets.US_ASCII));
  }

  static byte[] paxRecord(String key, String value) {
    int body = (" " + key + "=" + value + "\n").getBytes(StandardCharsets.UTF_8).length;
    int len = body + 1;
    while (Integer.toString(len).length() + body != len) {
      len = Integer.toString(len).length() + body;
    }
    return (len + " " + key + "=" + value + "\n").getBytes(StandardCharsets.UTF_8);
  }

  private static void put(byte[] h, int at, int max, byte[] v) {
    if (v.length > max) {
      throw new IllegalArgumentException("field of " + max + " bytes cannot hold " + v.length);
    }
    System.arraycopy(v, 0, h, at, v.length);
  }

  private void pad() {
    int r = out.size() % 512;
    if (r != 0) {
      out.writeBytes(new byte[512 - r]);
    }
  }
}
