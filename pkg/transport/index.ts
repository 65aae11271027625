export { encodeTensorFrames, decodeFrame, splitFrame, peekFrameMeta, tensorFromPayload, encodedDtype, FRAME_MAGIC, FRAME_VERSION, TensorKind, Encoding } from './frame.js';
export type { EncodedFrame, EncodeOptions, Frame, FrameMeta } from './frame.js';
export { Reassembler, transferKey } from './reassembler.js';
export type { ReassemblerOptions, ReassemblyEvent } from './reassembler.js';
export { CreditSender, CreditReceiver, encodeGrant, decodeGrant } from './credit.js';
export type { CreditReceiverOptions } from './credit.js';
export { ResendTracker, ControlMessageError, encodeTransferControl, decodeTransferControl, CONTROL_MAGIC, CONTROL_VERSION } from './resend.js';
export type { ResendDecision, ResendOptions, TransferControl } from './resend.js';
export { toHalf, fromHalf, float32ToHalfArray, halfToFloat32Array } from './fp16.js';
export { crc32 } from './crc32.js';
export {
  BadMagicError, ChunkChecksumError, CreditError, ForeignFrameError, FrameError, FrameMismatchError, IncompleteTensorError, ReassemblyOverflowError, TensorDigestError, TruncatedFrameError, UndeliveredTensorError,
} from './errors.js';
export type { TransferContext } from './errors.js';
export {
  TensorSender, TensorReceiver, MemoryBus, MemoryHub, Direction, channelSubjects, registerBus, createBus,
  InvalidSubjectError, CreditTimeoutError, ChannelClosedError, UnknownBusError,
} from './tensor-channel.js';
export type {
  BusFactory, BusSubscription, ChannelAddress, ChannelEvent, MessageBus, TensorReceiverOptions, TensorReceiverStats, TensorSenderOptions, TensorSenderStats,
} from './tensor-channel.js';
export { NatsBus, FRAME_HEADER } from './nats-bus.js';
export type { NatsBusOptions } from './nats-bus.js';
