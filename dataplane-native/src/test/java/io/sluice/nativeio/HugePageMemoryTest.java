package io.sluice.nativeio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class HugePageMemoryTest {
  private static final long LENGTH = 8L << 20;

  @Test
  void aMappingIsAlignedZeroedWritableAndGoneWhenItsArenaCloses() throws IOException {
    assumeTrue(HugePageMemory.isAvailable(), () -> "" + HugePageMemory.unavailabilityCause());
    long address;
    try (Arena arena = Arena.ofShared()) {
      MemorySegment m = HugePageMemory.map(LENGTH, arena);
      address = m.address();
      assertEquals(LENGTH, m.byteSize());
      assertEquals(0, address % HugePageMemory.HUGE_PAGE_BYTES, "2 MiB aligned");
      assertEquals(0L, m.get(ValueLayout.JAVA_LONG, 0));
      assertEquals(0L, m.get(ValueLayout.JAVA_LONG, LENGTH - 8));
      m.fill((byte) 7); // every page touched
      assertEquals((byte) 7, m.get(ValueLayout.JAVA_BYTE, LENGTH - 1));
      assertNotNull(mappingOf(address), "mapped while the arena is open");
      String thp = HugePageMemory.transparentHugePages();
      if (thp.equals("always") || thp.equals("madvise")) {
        // With transparent huge pages on, the advised range faults in 2 MiB pages.
        assertTrue(
            anonHugeKib(address) > 0, "no huge pages behind the mapping (THP mode " + thp + ")");
      }
    }
    assertNull(mappingOf(address), "unmapped when the arena closed");
  }

  @Test
  void releasedPagesLeaveResidentMemoryAndReadZerosWhileTheRangeStaysMapped() throws IOException {
    assumeTrue(HugePageMemory.isAvailable(), () -> "" + HugePageMemory.unavailabilityCause());
    try (Arena arena = Arena.ofShared()) {
      MemorySegment m = HugePageMemory.map(LENGTH, arena);
      m.fill((byte) 7);
      long before = rssKib(m.address());
      assertTrue(before >= (LENGTH >> 10), "resident after writing: " + before + " KiB");
      HugePageMemory.release(m);
      long after = rssKib(m.address());
      assertTrue(after < (LENGTH >> 10) / 8, "resident after release: " + after + " KiB");
      assertNotNull(mappingOf(m.address()), "still mapped");
      assertEquals(0L, m.get(ValueLayout.JAVA_LONG, 0), "reads zeros");
      assertEquals((byte) 0, m.get(ValueLayout.JAVA_BYTE, LENGTH - 1));
      m.fill((byte) 9); // and is usable again
      assertEquals((byte) 9, m.get(ValueLayout.JAVA_BYTE, LENGTH / 2));
    }
  }

  @Test
  void aNonPositiveLengthIsRefused() {
    assumeTrue(HugePageMemory.isAvailable());
    try (Arena arena = Arena.ofConfined()) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> HugePageMemory.map(0, arena));
      assertTrue(e.getMessage().contains("lengthBytes=0"), e.getMessage());
    }
  }

  @Test
  void theModeIsOneTheKernelNames() {
    String mode = HugePageMemory.transparentHugePages();
    assertTrue(List.of("always", "madvise", "never", "unknown").contains(mode), mode);
    assertFalse(mode.isEmpty());
  }

  /** The /proc/self/smaps block of the mapping holding {@code address}, or null. */
  private static List<String> mappingOf(long address) throws IOException {
    List<String> lines = Files.readAllLines(Path.of("/proc/self/smaps"));
    for (int i = 0; i < lines.size(); i++) {
      String l = lines.get(i);
      int dash = l.indexOf('-');
      int space = l.indexOf(' ');
      if (dash > 0 && space > dash && l.substring(0, dash).matches("[0-9a-f]+")) {
        long from = Long.parseUnsignedLong(l.substring(0, dash), 16);
        long to = Long.parseUnsignedLong(l.substring(dash + 1, space), 16);
        if (address >= from && address < to) {
          int end = i + 1;
          while (end < lines.size() && !lines.get(end).matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
            end++;
          }
          return lines.subList(i, end);
        }
      }
    }
    return null;
  }

  private static long rssKib(long address) throws IOException {
    for (String l : mappingOf(address)) {
      if (l.startsWith("Rss:")) {
        return Long.parseLong(l.replaceAll("[^0-9]", ""));
      }
    }
    return 0;
  }

  private static long anonHugeKib(long address) throws IOException {
    for (String l : mappingOf(address)) {
      if (l.startsWith("AnonHugePages:")) {
        return Long.parseLong(l.replaceAll("[^0-9]", ""));
      }
    }
    return 0;
  }
}
