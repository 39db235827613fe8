// GOV.UK Frontend's components (error summary focus, service navigation menu, buttons' double
// click guard, notification banners). Every page works without it.
import { initAll } from './govuk/govuk-frontend.min.js'
initAll()
