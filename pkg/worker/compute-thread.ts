/**
 * Worker-thread entry of a stage's compute (ThreadCompute spawns it): ORT run() blocks its thread
 * for the whole graph, so it runs here and the stage worker's event loop stays free for NATS reads,
 * credit grants and heartbeats. Requests and replies carry tensors by transfer (see transfer.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Tensor } from '../onnx/index.js';
import { StageCompute, type StagePlan } from './stage-compute.js';
import { forTransfer } from './transfer.js';
import type { ThreadReply, ThreadRequest } from './thread-compute.js';

const port = parentPort!;
const init = workerData as { plan: StagePlan; params: Record<string, Tensor>; warm: string[] };
const compute = new StageCompute(init.plan, init.params);

const reply = (r: ThreadReply, tensors?: Record<string, Tensor>, keep?: Record<string, Tensor>): void => {
  if (!tensors) { port.postMessage(r); return; }
  // Outputs never give away a buffer of the request's inputs: those stay stashed for B/W.
  const t = forTransfer(tensors, new Set(Object.values(keep ?? {}).map((x) => x.data.buffer)));
  port.postMessage({ ...r, tensors: t.tensors }, t.transfer);
};

// Requests are served as they come; 'close' is StageCompute.close(), which waits for the runs in
// flight and refuses later ones, so once it replies nothing runs here and the thread may be ended.
port.on('message', (req: ThreadRequest) => {
  void (async () => {
    try {
      switch (req.op) {
        case 'warm': await compute.warm(init.warm); return reply({ id: req.id });
        case 'forward': {
          const out = await compute.forward(req.microBatch, req.tensors, req.known);
          return reply({ id: req.id, digests: out.digests }, out.tensors, req.tensors);
        }
        case 'backward': {
          const out = await compute.backward(req.kind, req.microBatch, req.tensors, req.known);
          return reply({ id: req.id, digests: out.digests }, out.tensors, req.tensors);
        }
        case 'tiedGrads': return reply({ id: req.id }, await compute.tiedGrads());
        case 'addTiedGrads': await compute.addTiedGrads(req.tensors); return reply({ id: req.id });
        case 'finishGrads': return reply({ id: req.id, sumSq: await compute.finishGrads(req.microBatches) });
        case 'takeTrace': return reply({ id: req.id, trace: await compute.takeTrace(req.microBatches) });
        case 'update': return reply({ id: req.id }, await compute.update(req.scale, req.step, req.lr, req.tied));
        case 'setParams': await compute.setParams(req.tensors); return reply({ id: req.id });
        case 'snapshot': {
          const s = await compute.snapshot();
          const tensors: Record<string, Tensor> = {};
          for (const [k, t] of Object.entries(s.params)) tensors[`param/${k}`] = t;
          for (const [k, t] of Object.entries(s.optimizerState)) tensors[`opt/${k}`] = t;
          return reply({ id: req.id, value: s.step }, tensors);
        }
        case 'restore': {
          const params: Record<string, Tensor> = {};
          const optimizerState: Record<string, Tensor> = {};
          for (const [k, t] of Object.entries(req.tensors)) (k.startsWith('param/') ? params : optimizerState)[k.slice(k.indexOf('/') + 1)] = t;
          await compute.restore({ step: req.step, params, optimizerState });
          return reply({ id: req.id });
        }
        case 'params': {
          const p = await compute.params();
          return reply({ id: req.id }, Object.fromEntries(Object.entries(p).map(([k, t]) => [k, { ...t, data: t.data.slice() }])));
        }
        case 'close': await compute.close(); return reply({ id: req.id });
      }
    } catch (err) {
      reply({ id: req.id, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    }
  })();
});
