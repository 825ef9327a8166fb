package io.sluice.format;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.sluice.format.tokens.TokenDtype;
import io.sluice.format.tokens.TokensFormat;
import io.sluice.read.PosixReadBackend;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mutates a valid manifest (bytes, and JSON values replaced with hostile ones) and opens the
 * dataset through it: the only failure allowed is a {@link DatasetFormatException}. Bounded for CI;
 * {@code -Dsluice.fuzz.iterations=200000} runs longer.
 */
class ManifestFuzzTest {
  private static final String[] HOSTILE = {
    "-1",
    "0",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "\"x\"",
    "null",
    "[]",
    "{}",
    "true",
    "\"../../etc/passwd\"",
    "\"/etc/passwd\"",
    "\"\"",
    "4611686018427387905",
    "\"uint64\"",
    "2147483648",
    "1.5"
  };

  @TempDir Path dir;

  @Test
  void mutatedManifestsFailOnlyWithTheFormatsError() throws IOException {
    ByteBuffer b = ByteBuffer.allocate(64 * 16 * 2);
    Files.write(dir.resolve("a.bin"), b.array());
    Files.write(dir.resolve("b.bin"), new byte[40 * 16 * 2 + 6]);
    TokensFormat.index(dir, TokenDtype.UINT16, 16, IndexProgress.NONE);
    Path manifest = dir.resolve(Manifest.FILE_NAME);
    String valid = Files.readString(manifest);
    int iterations = Integer.getInteger("sluice.fuzz.iterations", 1500);
    long deadline = System.nanoTime() + 5_000_000_000L * Math.max(1, iterations / 1500);
    SplittableRandom rnd = new SplittableRandom(20261123);
    int opened = 0;
    int refused = 0;
    for (int i = 0; i < iterations && System.nanoTime() < deadline; i++) {
      String mutant = mutate(valid, rnd);
      Files.writeString(manifest, mutant);
      try (PosixReadBackend posix = new PosixReadBackend();
          SampleSource s = Formats.open(dir, posix)) {
        s.layout();
        opened++;
      } catch (DatasetFormatException expected) {
        refused++;
      } catch (Throwable t) {
        fail("mutant " + i + " threw " + t + " instead of DatasetFormatException:\n" + mutant, t);
      }
    }
    assertTrue(refused > 0 && opened > 0, "opened=" + opened + " refused=" + refused);
  }

  private static String mutate(String json, SplittableRandom rnd) {
    StringBuilder s = new StringBuilder(json);
    int edits = 1 + rnd.nextInt(3);
    for (int e = 0; e < edits; e++) {
      switch (rnd.nextInt(5)) {
        case 0 -> { // replace a JSON value after a colon with a hostile one
          int colon = s.indexOf(":", rnd.nextInt(s.length()));
          if (colon < 0) {
            break;
          }
          int end = colon + 1;
          while (end < s.length() && ",}\n".indexOf(s.charAt(end)) < 0) {
            end++;
          }
          s.replace(colon + 1, end, " " + HOSTILE[rnd.nextInt(HOSTILE.length)]);
        }
        case 1 -> s.setCharAt(rnd.nextInt(s.length()), (char) (32 + rnd.nextInt(95)));
        case 2 -> s.setLength(rnd.nextInt(s.length()));
        case 3 -> s.deleteCharAt(rnd.nextInt(s.length()));
        default -> {
          int at = rnd.nextInt(s.length());
          s.insert(at, HOSTILE[rnd.nextInt(HOSTILE.length)]);
        }
      }
      if (s.isEmpty()) {
        s.append('{');
      }
    }
    return new String(s.toString().getBytes(StandardCharsets.UTF_8), StandardCharsets.UTF_8);
  }
}
