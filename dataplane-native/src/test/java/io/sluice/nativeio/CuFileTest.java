package io.sluice.nativeio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class CuFileTest {
  @Test
  void withoutGdsOpeningSaysWhy() {
    Assumptions.assumeFalse(Gds.isAvailable(), "GDS is available: hw-tests cover it");
    UnsupportedOperationException e =
        assertThrows(UnsupportedOperationException.class, CuFile::open);
    assertTrue(
        e.getMessage().startsWith("GDS unavailable: " + Gds.unavailabilityCause().getMessage()),
        e.getMessage());
  }

  @Test
  void theDescriptorHasCufilesLayout() {
    // cufile.h: type (enum), a union of int fd and void*, a pointer: 24 bytes on 64-bit Linux
    assertEquals(24, CuFile.DESCR.byteSize());
    assertEquals(
        8,
        CuFile.DESCR.byteOffset(java.lang.foreign.MemoryLayout.PathElement.groupElement("handle")));
    assertEquals(8, Gds.CUFILE_ERROR.byteSize());
  }
}
