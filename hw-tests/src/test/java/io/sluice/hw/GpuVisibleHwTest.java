package io.sluice.hw;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The lab host's GPUs are visible to the daemon's user: the precondition of every GPU path. */
@Tag("hw")
@Tag("gpu")
class GpuVisibleHwTest {
  @Test
  void nvidiaDriverListsAtLeastOneGpu() throws IOException, InterruptedException {
    Hardware.need(
        Files.exists(Path.of("/dev/nvidiactl")),
        "NVIDIA GPU",
        "/dev/nvidiactl does not exist (no NVIDIA driver loaded)");
    Process p = new ProcessBuilder("nvidia-smi", "-L").redirectErrorStream(true).start();
    assertTrue(p.waitFor(30, TimeUnit.SECONDS), "nvidia-smi -L did not finish in 30 s");
    List<String> gpus =
        new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8)
            .lines()
            .filter(l -> l.startsWith("GPU "))
            .toList();
    assertEquals(0, p.exitValue(), "nvidia-smi -L failed");
    assertTrue(!gpus.isEmpty(), "driver loaded but nvidia-smi lists no GPU");
  }
}
