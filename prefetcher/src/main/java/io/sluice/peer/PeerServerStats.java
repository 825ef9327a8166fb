package io.sluice.peer;

/**
 * What a peer server has answered since start.
 *
 * @param fetches fetch requests answered
 * @param samplesSent samples it held and sent
 * @param samplesMissed samples asked for that it did not hold
 * @param bytesSent sample bytes sent
 * @param badRequests requests it could not decode (answered with an error, connection kept)
 */
public record PeerServerStats(
    long fetches, long samplesSent, long samplesMissed, long bytesSent, long badRequests) {}
