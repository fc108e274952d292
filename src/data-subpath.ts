// `pipewright/data`: the data helpers below the root's loaders: micro-batch split and merge, the IDX
// format, text windows and the Fashion-MNIST constants.
export { microbatchSizes, splitTensor, splitLabels, mergeTensors, mergeLabels, splitBatch, type Microbatch } from "./data/microbatch.js";
export { parseIdx, readIdx, encodeIdx, writeIdx, DatasetFileError, type IdxArray } from "./data/idx.js";
export { textCorpusFromBytes, BYTE_VOCAB_SIZE } from "./data/text.js";
export { gather, epochSeed } from "./data/loader.js";
export {
  FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, DEFAULT_FASHION_MNIST_DIR, resolveFashionMnistDir,
} from "./data/fashion-mnist.js";
