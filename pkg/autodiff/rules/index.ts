// Side-effect imports: each file registers the gradient rules of one op group.
import './arithmetic.js';
import './unary.js';
import './nn.js';
import './reduce.js';
import './shape-ops.js';
import './conv.js';
import './exported.js';
