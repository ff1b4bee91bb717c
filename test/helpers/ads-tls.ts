/**
 * An AdsServer served over gRPC with TLS on 127.0.0.1, as the controller serves it: a serving
 * certificate for 127.0.0.1 and `amesh-controller.amesh-system.svc`, signed by a fresh serving CA
 * whose certificate agents must trust (`caCertPem`).
 */
import * as grpc from '@grpc/grpc-js';
import { addAdsService, type AdsServer } from '../../src/controller/xds/ads-server.js';
import { createServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';

export interface ServedAds {
  port: number;
  /** The serving CA: put it in the agent's root file. */
  caCertPem: string;
  /** Closes the ADS server and shuts gRPC down. */
  close(): void;
}

export async function serveAdsOverTls(ads: AdsServer): Promise<ServedAds> {
  const grpcServer = new grpc.Server();
  addAdsService(grpcServer, ads);
  const serving = await createServingCertificates({ ipAddresses: ['127.0.0.1'], dnsNames: ['amesh-controller.amesh-system.svc'], days: 1 });
  const credentials = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(serving.keyPem), cert_chain: Buffer.from(serving.certPem) }], false);
  const port = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', credentials, (err, bound) => (err ? reject(err) : resolve(bound))));
  return {
    port,
    caCertPem: serving.caCertPem,
    close: () => {
      ads.close();
      grpcServer.forceShutdown();
    },
  };
}
