/** xla: every per-op lowering (importing this registers them). */
import './conv2d.js';
import './batchnorm2d.js';
import './relu.js';
import './maxpool2d.js';
import './bn-relu-pool.js';
import './prototypes.js';
import './distance.js';
import './softmax.js';
import './dense.js';
import './rotate.js';
