package io.sluice.hw;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sluice.demo.DemoDataset;
import io.sluice.nativeio.Cuda;
import io.sluice.server.SluiceDaemon;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The GPU path end to end: a daemon serves a token dataset with {@code delivery=cuda}, and a Python
 * trainer process ({@code cuda_trainer.py}, sluice.Dataset with {@code device="cuda:0"}) receives
 * torch CUDA tensors through CUDA IPC, checks every token against the dataset's token function, and
 * times epochs of cuda delivery beside shm delivery moved to the GPU by torch. Needs a GPU, python3
 * with torch (CUDA), pyarrow and cupy or cuda-python, and the repository's clients/python (found
 * above the working directory, or named by {@code SLUICE_PYTHON_CLIENT}); {@code SLUICE_PYTHON}
 * names another interpreter.
 */
@Tag("hw")
@Tag("gpu")
class CudaDeliveryHwTest {
  private static final int SHARDS = 8;
  private static final int PER_SHARD = 1024;
  private static final int SEQ_LEN = 2048;
  private static final int BATCH = 64;

  @TempDir Path dir;

  @Test
  void aTrainerProcessGetsTorchCudaTensorsThatMatchTheFiles() throws Exception {
    Hardware.need(
        Cuda.isAvailable(),
        "CUDA GPU",
        Cuda.isAvailable() ? "" : Cuda.unavailabilityCause().getMessage());
    Path client = pythonClient();
    Hardware.need(
        client != null,
        "the Python client",
        "clients/python not found above " + Path.of("").toAbsolutePath());
    String python = System.getenv().getOrDefault("SLUICE_PYTHON", "python3");
    Run probe =
        run(
            List.of(
                python,
                "-c",
                "import sys; sys.path.insert(0, sys.argv[1]); import pyarrow;"
                    + " from sluice import _cuda; print(_cuda.unavailable_cause() or 'ok')",
                client.toString()),
            60);
    String ready = probe.output.strip();
    Hardware.need(
        probe.exit == 0 && ready.endsWith("ok"),
        "python3 with torch (CUDA), pyarrow and cupy or cuda-python",
        ready);

    DemoDataset.ensure(dir.resolve("t"), SHARDS, PER_SHARD, SEQ_LEN);
    Path script = dir.resolve("cuda_trainer.py");
    try (InputStream in = CudaDeliveryHwTest.class.getResourceAsStream("cuda_trainer.py")) {
      Files.write(script, in.readAllBytes());
    }
    try (SluiceDaemon daemon = SluiceDaemon.start("127.0.0.1", 0, Map.of("t", dir.resolve("t")))) {
      Run trainer =
          run(
              List.of(
                  python,
                  script.toString(),
                  client.toString(),
                  daemon.uri(),
                  "t",
                  Integer.toString(BATCH),
                  Integer.toString(SEQ_LEN),
                  Integer.toString(SHARDS * PER_SHARD)),
              600);
      System.out.println(
          "[cuda delivery] " + trainer.output.strip().replace("\n", "\n[cuda delivery] "));
      assertEquals(0, trainer.exit, trainer.output);
      assertTrue(trainer.output.contains("\"checked\""), trainer.output);
      assertTrue(trainer.output.contains("\"delivery\": \"cuda\""), trainer.output);
    }
  }

  private record Run(int exit, String output) {}

  private static Run run(List<String> command, long timeoutSeconds)
      throws IOException, InterruptedException {
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    List<String> lines = new ArrayList<>();
    Thread pump =
        Thread.ofPlatform()
            .start(
                () -> {
                  try (var r = p.inputReader(StandardCharsets.UTF_8)) {
                    r.lines().forEach(lines::add);
                  } catch (IOException ignored) {
                    // the process is gone
                  }
                });
    if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      pump.join(5_000);
      return new Run(-1, String.join("\n", lines) + "\n(killed after " + timeoutSeconds + " s)");
    }
    pump.join(5_000);
    return new Run(p.exitValue(), String.join("\n", lines));
  }

  /** clients/python of the repository this runs in, or null. */
  private static Path pythonClient() {
    String named = System.getenv("SLUICE_PYTHON_CLIENT");
    if (named != null) {
      return Path.of(named);
    }
    for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
      Path c = d.resolve("clients/python");
      if (Files.isRegularFile(c.resolve("sluice/__init__.py"))) {
        return c;
      }
    }
    return null;
  }
}
