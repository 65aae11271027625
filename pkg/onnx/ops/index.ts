// Side-effect imports: each file registers the shape functions of one op group.
import './elementwise.js';
import './matmul.js';
import './nn.js';
import './reduce.js';
import './shape-ops.js';
import './conv.js';
import './exported.js';
