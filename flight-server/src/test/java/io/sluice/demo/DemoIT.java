package io.sluice.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.server.FlightTransport;
import io.sluice.tools.EpochReader;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The demo end to end, smaller: real files, a real daemon, real Flight streams, real checks. */
class DemoIT {
  @Test
  void demoReportsExactlyOnceAndGoodContent(@TempDir Path dir) throws Exception {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);
    DemoRunner.Options o =
        new DemoRunner.Options(dir, 3, 1000, 64, 2, 16, 7, FlightTransport.AUTO, "auto");
    EpochReader.Result r = DemoRunner.run(o, out);
    DemoRunner.print(r, out);
    String text = buf.toString(StandardCharsets.UTF_8);
    assertTrue(r.ok(), text);
    assertTrue(text.contains("exactly-once: ok"), text);
    assertEquals(3000, r.rows() - r.paddedRows());
    assertEquals(3008, r.rows(), "3000 samples padded to a multiple of 32");
  }

  @Test
  void corruptedShardIsCaughtByTheContentCheck(@TempDir Path dir) throws Exception {
    DemoDataset.ensure(dir, 2, 100, 16);
    Path shard = dir.resolve("shard-00001.bin");
    byte[] bytes = Files.readAllBytes(shard);
    bytes[40 * 32 + 6] ^= 0x5A; // sample 140, token 3
    long mtime = Files.getLastModifiedTime(shard).toMillis();
    Files.write(shard, bytes);
    Files.setLastModifiedTime(shard, java.nio.file.attribute.FileTime.fromMillis(mtime));
    PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
    EpochReader.Result r =
        DemoRunner.run(
            new DemoRunner.Options(dir, 2, 100, 16, 2, 8, 1, FlightTransport.NIO, "posix"), quiet);
    assertEquals(1, r.badBatches());
    assertTrue(!r.ok());
    assertTrue(r.firstProblem().contains("sample_id=140 token 3"), r.firstProblem());
  }
}
