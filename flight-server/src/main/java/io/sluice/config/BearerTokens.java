package io.sluice.config;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The bearer tokens a client may present ({@code authorization: Bearer TOKEN}), read from a file of
 * one token per line ({@code #} starts a comment). The file must not be readable by group or
 * others, and tokens are never printed: {@link #toString()} says only how many there are.
 */
public final class BearerTokens {
  /** Shortest token accepted: 128 bits as hex, so a guessable token is refused at start. */
  public static final int MIN_TOKEN_CHARS = 16;

  private final Path file;
  private final List<byte[]> tokens;

  private BearerTokens(Path file, List<byte[]> tokens) {
    this.file = file;
    this.tokens = tokens;
  }

  /**
   * Reads {@code file}; a mistake (missing, readable by others, empty, a short token) is a {@link
   * ConfigException} naming {@code where} (for example {@code "config /etc/sluice/sluice.yaml:
   * auth.tokens_file"}) and the file, never a token.
   */
  public static BearerTokens read(String where, Path file) {
    String head = where + "=" + file + ": ";
    try {
      Set<PosixFilePermission> perms = Files.getPosixFilePermissions(file);
      if (perms.contains(PosixFilePermission.GROUP_READ)
          || perms.contains(PosixFilePermission.OTHERS_READ)) {
        throw new ConfigException(
            head
                + "is readable by group or others ("
                + java.nio.file.attribute.PosixFilePermissions.toString(perms)
                + "); run chmod 600 on it");
      }
      List<byte[]> out = new ArrayList<>();
      List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
      for (int i = 0; i < lines.size(); i++) {
        String t = lines.get(i).strip();
        if (t.isEmpty() || t.startsWith("#")) {
          continue;
        }
        if (t.length() < MIN_TOKEN_CHARS || t.chars().anyMatch(Character::isWhitespace)) {
          throw new ConfigException(
              head
                  + "line "
                  + (i + 1)
                  + ": a token must be at least "
                  + MIN_TOKEN_CHARS
                  + " characters without spaces (openssl rand -hex 32 makes one)");
        }
        out.add(t.getBytes(StandardCharsets.UTF_8));
      }
      if (out.isEmpty()) {
        throw new ConfigException(head + "holds no token (one per line, # for comments)");
      }
      return new BearerTokens(file, List.copyOf(out));
    } catch (NoSuchFileException e) {
      throw new ConfigException(head + "no such file", e);
    } catch (IOException e) {
      throw new ConfigException(head + "cannot be read: " + e.getMessage(), e);
    }
  }

  /** Whether {@code presented} is one of the tokens, comparing in time independent of content. */
  public boolean accepts(String presented) {
    if (presented == null) {
      return false;
    }
    byte[] p = presented.getBytes(StandardCharsets.UTF_8);
    boolean ok = false;
    for (byte[] t : tokens) {
      ok |= MessageDigest.isEqual(t, p);
    }
    return ok;
  }

  public Path file() {
    return file;
  }

  public int count() {
    return tokens.size();
  }

  @Override
  public String toString() {
    return "BearerTokens[" + tokens.size() + " from " + file + "]";
  }
}
