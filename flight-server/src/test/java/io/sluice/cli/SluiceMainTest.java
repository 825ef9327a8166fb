package io.sluice.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class SluiceMainTest {
  private record Run(int status, String out, String err) {}

  private static Run run(String... args) {
    CommandLine cl = SluiceMain.commandLine();
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    cl.setOut(new PrintWriter(out, true));
    cl.setErr(new PrintWriter(err, true));
    int status = cl.execute(args);
    return new Run(status, out.toString(), err.toString());
  }

  @Test
  void helpListsEverySubcommand() {
    Run r = run("--help");
    assertEquals(0, r.status());
    for (String sub :
        new String[] {"demo", "serve", "dataset", "plan", "read", "stats", "test", "help"}) {
      assertTrue(r.out().contains("  " + sub), () -> "--help lacks " + sub + ":\n" + r.out());
    }
  }

  @Test
  void everySubcommandHasHelp() {
    for (String[] sub :
        new String[][] {
          {"demo"},
          {"serve"},
          {"dataset"},
          {"dataset", "index"},
          {"plan"},
          {"read"},
          {"stats"},
          {"test"}
        }) {
      String[] args = java.util.Arrays.copyOf(sub, sub.length + 1);
      args[sub.length] = "--help";
      Run r = run(args);
      assertEquals(0, r.status(), String.join(" ", args));
      assertTrue(r.out().startsWith("Usage: sluice " + String.join(" ", sub)), r.out());
    }
  }

  @Test
  void unknownSubcommandIsOneLineAndStatusTwo() {
    Run r = run("no-such-thing");
    assertEquals(2, r.status());
    assertEquals(1, r.err().strip().lines().count(), r.err());
    assertEquals("sluice: unknown command 'no-such-thing' (see 'sluice --help')", r.err().strip());
    assertEquals("", r.out());
  }

  @Test
  void badFlagIsOneLineAndStatusTwo() {
    Run r = run("demo", "--no-such-flag");
    assertEquals(2, r.status());
    assertEquals(1, r.err().strip().lines().count(), r.err());
    Run bad = run("demo", "--ranks", "zero");
    assertEquals(2, bad.status());
    assertTrue(bad.err().contains("--ranks"), bad.err());
  }

  @Test
  void badValuesFoundAfterParsingAreStatusTwo() {
    Run r = run("demo", "--ranks", "0");
    assertEquals(2, r.status());
    assertTrue(r.err().contains("--ranks=0 must be >= 1"), r.err());
    Run s = run("serve", "--dataset", "nopath");
    assertEquals(2, s.status());
    assertTrue(s.err().contains("--dataset=nopath must be NAME=PATH"), s.err());
    Run f = run("dataset", "index", "/tmp", "--format", "parquet");
    assertEquals(2, f.status());
    assertTrue(f.err().contains("--format=parquet"), f.err());
  }

  @Test
  void planPrintsOneLinePerBatchAndMatchesThePlanner() {
    Run r =
        run(
            "plan",
            "--samples",
            "1000",
            "--seed",
            "3",
            "--epoch",
            "1",
            "--world-size",
            "4",
            "--rank",
            "2",
            "--batch-size",
            "8",
            "--steps",
            "3");
    assertEquals(0, r.status(), r.err());
    java.util.List<String> lines = r.out().lines().toList();
    assertEquals(3, lines.size());
    io.sluice.planner.EpochPlan plan =
        io.sluice.planner.EpochPlan.of(
            io.sluice.planner.GlobalSequence.of(
                io.sluice.planner.DatasetLayout.ofCount(1000),
                3,
                1,
                new io.sluice.planner.ShuffleMode.Global()),
            4,
            8,
            false);
    for (int t = 0; t < 3; t++) {
      String want =
          java.util.Arrays.stream(plan.batch(2, t))
              .mapToObj(Long::toString)
              .collect(java.util.stream.Collectors.joining(" "));
      assertEquals(want, lines.get(t));
    }
    Run resumed =
        run(
            "plan",
            "--samples",
            "1000",
            "--seed",
            "3",
            "--epoch",
            "1",
            "--world-size",
            "2",
            "--rank",
            "1",
            "--batch-size",
            "16",
            "--start-cursor",
            "32",
            "--steps",
            "1");
    assertEquals(0, resumed.status(), resumed.err());
    String[] ids = resumed.out().strip().split(" ");
    assertEquals(16, ids.length);
    assertEquals(
        java.util.Arrays.stream(plan.batch(2, 1)).mapToObj(Long::toString).toList(),
        java.util.Arrays.asList(ids).subList(0, 8),
        "rank 1 of W=2 at step 1 starts with rank 2's old slice");
  }

  @Test
  void planRejectsBadArgumentsWithOneLine() {
    Run r =
        run("plan", "--samples", "100", "--world-size", "2", "--rank", "2", "--batch-size", "4");
    assertEquals(2, r.status());
    assertTrue(r.err().contains("--rank=2"), r.err());
    Run c =
        run(
            "plan",
            "--samples",
            "100",
            "--world-size",
            "2",
            "--rank",
            "0",
            "--batch-size",
            "4",
            "--start-cursor",
            "3");
    assertEquals(2, c.status());
    assertTrue(c.err().contains("start_cursor=3"), c.err());
    Run both =
        run(
            "plan",
            "--samples",
            "100",
            "--dataset",
            "/x",
            "--world-size",
            "1",
            "--rank",
            "0",
            "--batch-size",
            "1");
    assertEquals(2, both.status());
    assertEquals(1, both.err().strip().lines().count(), both.err());
  }

  @Test
  void readRejectsANegativeReconnectTimeoutBeforeConnecting() {
    Run r =
        run(
            "read",
            "--server",
            "grpc://127.0.0.1:1",
            "--dataset",
            "d",
            "--reconnect-timeout",
            "-1");
    assertEquals(2, r.status(), r.err());
    assertTrue(
        r.err().contains("--reconnect-timeout=-1.0 must be a number of seconds >= 0"), r.err());
  }

  @Test
  void versionNamesTheJvm() {
    Run r = run("--version");
    assertEquals(0, r.status());
    assertTrue(r.out().startsWith("sluice "), r.out());
    assertTrue(r.out().contains("java " + Runtime.version().feature()), r.out());
  }
}
